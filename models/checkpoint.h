#ifndef DSRT_MODELS_CHECKPOINT_H_
#define DSRT_MODELS_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ir/weights.h"
#include "models/config.h"
#include "models/safetensors.h"

namespace dsrt::models {

// An unmodified Hugging Face DeepSeek checkpoint directory: config.json and either
// model.safetensors.index.json with its shards, or every *.safetensors file in the
// directory. Files stay mapped for the object's lifetime; views point into them. All
// methods are const and safe to call from several threads.
class Checkpoint : public ir::WeightStore {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const DeepSeekConfig& config() const { return config_; }
  bool Has(absl::string_view name) const;
  std::vector<std::string> TensorNames() const;  // sorted
  // The stored bytes, dtype and shape, as the file has them.
  absl::StatusOr<ir::WeightView> Raw(absl::string_view name) const;
  absl::StatusOr<ir::WeightView> Get(absl::string_view name) const override { return Raw(name); }

  // The tensor as float32, checked to have `expected_shape`: F32, BF16 and F16
  // converted exactly; F8_E4M3 multiplied by its "<name>_scale_inv" blocks (the
  // config's weight_block_size, 128×128 when absent; partial blocks at the edges). Any
  // non-finite value is an error naming the tensor and the index.
  absl::StatusOr<std::vector<float>> LoadF32(const std::string& name, const std::vector<int64_t>& expected_shape) const;
  // As LoadF32, in bfloat16 bits: exact for a BF16 tensor, rounded to nearest even otherwise.
  absl::StatusOr<std::vector<uint16_t>> LoadBF16(const std::string& name,
                                                 const std::vector<int64_t>& expected_shape) const;

  // Every tensor of ExpectedTensors(config(), include_mtp) is present with its shape
  // and a float dtype, and every F8_E4M3 one has a well-shaped scale_inv. Reads no data.
  absl::Status CheckTensors(bool include_mtp) const;

 private:
  struct Location {
    const SafetensorsFile* file;
    const SafetensorsTensor* tensor;
  };

  Checkpoint(std::string dir, DeepSeekConfig config) : dir_(std::move(dir)), config_(std::move(config)) {}
  absl::Status OpenIndexed(const std::string& index_path);
  absl::Status OpenAllFiles();
  absl::Status AddFile(const std::string& file_name);
  absl::StatusOr<Location> Find(absl::string_view name) const;
  absl::Status CheckShape(const SafetensorsTensor& tensor, const std::vector<int64_t>& expected_shape) const;
  absl::StatusOr<std::vector<float>> ScaleInv(const std::string& weight_name, const std::vector<int64_t>& shape) const;
  absl::Status Dequantize(const SafetensorsTensor& tensor, const ir::WeightView& view, std::vector<float>& out) const;
  absl::Status Error(absl::string_view what) const;

  std::string dir_;
  DeepSeekConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  absl::flat_hash_map<std::string, Location> tensors_;
};

}  // namespace dsrt::models

#endif  // DSRT_MODELS_CHECKPOINT_H_
