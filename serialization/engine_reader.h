#ifndef DSRT_SERIALIZATION_ENGINE_READER_H_
#define DSRT_SERIALIZATION_ENGINE_READER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "ir/graph.h"
#include "ir/weights.h"
#include "serialization/engine.pb.h"

namespace dsrt::serialization {

// The weights of one rank, pointing into the mapping of its section.
class MappedWeights final : public ir::WeightStore {
 public:
  // An unknown name is NotFound, naming the weight.
  absl::StatusOr<ir::WeightView> Get(absl::string_view name) const override;
  // Drops the whole pages inside the weight from the process's memory (madvise).
  void Unneeded(absl::string_view name) const override;
  // Maps the weight's pages now (madvise MADV_POPULATE_READ), so that the first steps
  // do not fault them in 4 KiB at a time.
  void Prefault(absl::string_view name) const override;

 private:
  friend class Engine;
  std::string path_;
  int rank_ = -1;
  absl::flat_hash_map<std::string, ir::WeightView> views_;
};

// An engine file opened for one rank: its metadata, parsed, and that rank's
// section of weights, mapped read-only. Nothing else of the file is mapped.
class Engine {
 public:
  // Checks the header (magic, version, checksum, length), the engine proto
  // (checksum, parse, layout) and maps rank `rank`'s section; rank -1 opens
  // the metadata only. Every error names `path`.
  static absl::StatusOr<std::unique_ptr<Engine>> Open(const std::string& path, int rank);

  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  ~Engine();

  const std::string& path() const { return path_; }
  const EngineProto& proto() const { return proto_; }
  int rank() const { return rank_; }
  int world_size() const { return proto_.world_size(); }

  // This rank's graph, and its MTP graph (NotFound when the engine has none).
  absl::StatusOr<std::unique_ptr<ir::Graph>> LoadGraph() const;
  absl::StatusOr<std::unique_ptr<ir::Graph>> LoadMtpGraph() const;
  bool has_mtp_graph() const;

  // Views into the mapping; valid while the Engine lives.
  const ir::WeightStore& weights() const { return weights_; }
  // Recomputes the checksum of every weight of the rank; the error names the
  // first weight whose bytes do not match.
  absl::Status VerifyWeights() const;

  // The file range mapped for this rank: its section (empty for rank -1).
  int64_t mapped_offset() const { return section_offset_; }
  int64_t mapped_bytes() const { return section_bytes_; }

 private:
  Engine() = default;
  absl::Status MapSection(int fd);
  absl::StatusOr<const RankSection*> Section() const;

  std::string path_;
  int rank_ = -1;
  EngineProto proto_;
  void* map_ = nullptr;
  size_t map_length_ = 0;
  int64_t section_offset_ = 0;
  int64_t section_bytes_ = 0;
  const uint8_t* section_data_ = nullptr;
  MappedWeights weights_;
};

}  // namespace dsrt::serialization

#endif  // DSRT_SERIALIZATION_ENGINE_READER_H_
