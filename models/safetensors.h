#ifndef DSRT_MODELS_SAFETENSORS_H_
#define DSRT_MODELS_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ir/dtype.h"
#include "ir/weights.h"

namespace dsrt::models {

// The safetensors spelling of a dtype ("F32", "BF16", "F8_E4M3", ...). BOOL reads as
// kU8 (one byte, 0 or 1). Unknown names are an error.
absl::StatusOr<ir::DType> DTypeFromSafetensorsName(absl::string_view name);
// kI4 has no safetensors spelling: "" for it.
absl::string_view SafetensorsDTypeName(ir::DType dtype);

// One tensor of a safetensors file, as its header describes it.
struct SafetensorsTensor {
  std::string name;
  ir::DType dtype = ir::DType::kF32;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // from the start of the file
  int64_t bytes = 0;
};

// A parsed safetensors header: 8-byte little-endian header length, a JSON object
// {name: {dtype, shape, data_offsets}} with an optional "__metadata__", then the data.
struct SafetensorsHeader {
  std::vector<SafetensorsTensor> tensors;  // in file-offset order
  std::map<std::string, std::string> metadata;
  int64_t data_start = 0;
};

// Validates everything a header claims against `file_size`: the header length, the
// JSON, every dtype, shape and data_offsets (consistent with dtype × shape, inside
// the data region). `file_bytes` needs only to hold the header. `path` names the
// file in errors.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view file_bytes, int64_t file_size,
                                                         absl::string_view path);

// One .safetensors file, mapped read-only for the object's lifetime. Views point into
// the mapping: they stay valid while the file object lives.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsTensor>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // nullptr when absent.
  const SafetensorsTensor* Find(absl::string_view name) const;
  absl::StatusOr<ir::WeightView> View(absl::string_view name) const;
  ir::WeightView View(const SafetensorsTensor& tensor) const;

 private:
  SafetensorsFile(std::string path, const uint8_t* data, int64_t size, SafetensorsHeader header);

  std::string path_;
  const uint8_t* data_;
  int64_t size_;
  SafetensorsHeader header_;
  absl::flat_hash_map<std::string, int> index_;
};

}  // namespace dsrt::models

#endif  // DSRT_MODELS_SAFETENSORS_H_
