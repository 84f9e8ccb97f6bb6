#ifndef DSRT_SERIALIZATION_ENGINE_WRITER_H_
#define DSRT_SERIALIZATION_ENGINE_WRITER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ir/dtype.h"
#include "ir/graph.h"
#include "serialization/engine.pb.h"

namespace dsrt::serialization {

// One weight of a rank. The writer calls `fill` once, when the weight's turn
// comes, with a destination of exactly `bytes` bytes (64-byte aligned) that it
// must fill completely; so a checkpoint is converted one weight at a time.
struct WeightToWrite {
  std::string name;
  ir::DType dtype = ir::DType::kF32;
  std::vector<int64_t> shape;
  std::string quant_scheme;
  int64_t bytes = 0;
  std::function<absl::Status(void* dst)> fill;
};

// What one rank runs: its graph, its optional MTP graph, and the weights their
// Constant nodes name.
struct RankContents {
  const ir::Graph* graph = nullptr;
  const ir::Graph* mtp_graph = nullptr;  // null when the model has no MTP module
  std::vector<WeightToWrite> weights;
};

// Writes an engine of ranks.size() ranks. `metadata` holds everything but
// `ranks`, `world_size` and `format_version`, which the writer sets. The file
// appears under `path` only once it is complete (it is written to
// `path + ".tmp"` and renamed). Memory stays bounded by one weight: each is
// filled straight into a mapping of its place in the file. `progress` is told
// the weight bytes written so far and in total after each weight.
absl::Status WriteEngine(const std::string& path, EngineProto metadata, std::vector<RankContents> ranks,
                         const std::function<void(int64_t done, int64_t total)>& progress = {});

}  // namespace dsrt::serialization

#endif  // DSRT_SERIALIZATION_ENGINE_WRITER_H_
