#ifndef DSRT_MODELS_SAFETENSORS_WRITER_H_
#define DSRT_MODELS_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ir/dtype.h"

namespace dsrt::models {

// What the header of a file to be written says about one tensor.
struct SafetensorsEntry {
  std::string name;
  ir::DType dtype = ir::DType::kF32;
  std::vector<int64_t> shape;
};

// Bytes of the data of `entry` (dtype × shape).
int64_t SafetensorsEntryBytes(const SafetensorsEntry& entry);

// Writes one .safetensors file as a stream: the header (every offset computed from the
// entries up front) is written at Create, then the tensors' bytes are appended in
// entry order, in chunks of any size, so a writer never needs more than a chunk in
// memory.
class SafetensorsWriter {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(
      const std::string& path, std::vector<SafetensorsEntry> entries,
      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Appends to the tensor being written; a chunk must not run past its end.
  absl::Status Append(const void* data, int64_t bytes);
  // Flushes and closes; an error when a tensor is incomplete or the disk fails.
  absl::Status Close();

  const std::string& path() const { return path_; }
  // The entry the next Append writes to; nullptr when all are complete.
  const SafetensorsEntry* current() const;

 private:
  SafetensorsWriter(std::string path, std::FILE* file, std::vector<SafetensorsEntry> entries);
  void AdvancePastFullTensors();

  std::string path_;
  std::FILE* file_;
  std::vector<SafetensorsEntry> entries_;
  size_t current_ = 0;
  int64_t written_in_current_ = 0;
};

// A whole small tensor in memory, for tests and tools.
struct SafetensorsBlob {
  SafetensorsEntry entry;
  std::string bytes;
};
absl::Status WriteSafetensorsFile(const std::string& path, const std::vector<SafetensorsBlob>& tensors);

}  // namespace dsrt::models

#endif  // DSRT_MODELS_SAFETENSORS_WRITER_H_
