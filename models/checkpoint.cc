#include "models/checkpoint.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ir/dtype.h"
#include "ir/status_macros.h"
#include "models/hf_names.h"

namespace dsrt::models {
namespace {

constexpr char kIndexFile[] = "model.safetensors.index.json";

std::string ShapeText(const std::vector<int64_t>& shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return text.str();
}

// A shard name from an index must stay inside the checkpoint directory.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

const std::array<float, 256>& F8E4M3Table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> values;
    for (int bits = 0; bits < 256; ++bits) values[bits] = ir::F8E4M3ToF32(static_cast<uint8_t>(bits));
    return values;
  }();
  return table;
}

void ConvertToF32(const ir::WeightView& view, std::vector<float>& out) {
  const int64_t count = static_cast<int64_t>(out.size());
  const auto* bytes = static_cast<const uint8_t*>(view.data);
  switch (view.dtype) {
    case ir::DType::kF32:
      std::memcpy(out.data(), bytes, count * sizeof(float));
      return;
    case ir::DType::kBF16:
      for (int64_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, bytes + 2 * i, 2);
        out[i] = ir::BF16ToF32(bits);
      }
      return;
    case ir::DType::kF16:
      for (int64_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, bytes + 2 * i, 2);
        out[i] = ir::F16ToF32(bits);
      }
      return;
    default:
      return;
  }
}

int64_t FirstNonFinite(const std::vector<float>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

int64_t ElementCount(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  DSRT_ASSIGN_OR_RETURN(DeepSeekConfig config, LoadDeepSeekConfig(dir));
  auto checkpoint = std::unique_ptr<Checkpoint>(new Checkpoint(dir, std::move(config)));
  const std::string index_path = absl::StrCat(dir, "/", kIndexFile);
  std::error_code error;
  if (std::filesystem::exists(index_path, error)) {
    DSRT_RETURN_IF_ERROR(checkpoint->OpenIndexed(index_path));
  } else {
    DSRT_RETURN_IF_ERROR(checkpoint->OpenAllFiles());
  }
  return checkpoint;
}

absl::Status Checkpoint::Error(absl::string_view what) const {
  return absl::InvalidArgumentError(absl::StrCat("checkpoint ", dir_, ": ", what));
}

absl::Status Checkpoint::AddFile(const std::string& file_name) {
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                        SafetensorsFile::Open(absl::StrCat(dir_, "/", file_name)));
  for (const SafetensorsTensor& tensor : file->tensors()) {
    auto [it, inserted] = tensors_.try_emplace(tensor.name, Location{file.get(), &tensor});
    if (!inserted) {
      return Error(absl::StrCat("tensor '", tensor.name, "' is in both ", it->second.file->path(), " and ",
                                file->path()));
    }
  }
  files_.push_back(std::move(file));
  return absl::OkStatus();
}

absl::Status Checkpoint::OpenIndexed(const std::string& index_path) {
  DSRT_ASSIGN_OR_RETURN(const std::string text, ReadTextFile(index_path));
  const nlohmann::json index = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": not a JSON object"));
  }
  if (!index.contains("weight_map") || !index.at("weight_map").is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": no \"weight_map\" object"));
  }
  std::vector<std::string> shard_names;
  for (const auto& [name, file] : index.at("weight_map").items()) {
    if (!file.is_string() || !IsPlainFileName(file.get<std::string>())) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": tensor '", name, "' maps to ", file.dump(), ", not a file name"));
    }
    shard_names.push_back(file.get<std::string>());
  }
  std::sort(shard_names.begin(), shard_names.end());
  shard_names.erase(std::unique(shard_names.begin(), shard_names.end()), shard_names.end());
  for (const std::string& shard : shard_names) DSRT_RETURN_IF_ERROR(AddFile(shard));

  for (const auto& [name, file] : index.at("weight_map").items()) {
    auto it = tensors_.find(name);
    const std::string expected_path = absl::StrCat(dir_, "/", file.get<std::string>());
    if (it == tensors_.end() || it->second.file->path() != expected_path) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": tensor '", name, "' is mapped to ",
                                                     file.get<std::string>(), ", which does not contain it"));
    }
  }
  return absl::OkStatus();
}

absl::Status Checkpoint::OpenAllFiles() {
  std::vector<std::string> file_names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, error)) {
    const std::string name = entry.path().filename().string();
    if (absl::EndsWith(name, ".safetensors")) file_names.push_back(name);
  }
  if (error) return Error(absl::StrCat("cannot list the directory: ", error.message()));
  if (file_names.empty()) return Error(absl::StrCat("no *.safetensors files and no ", kIndexFile));
  std::sort(file_names.begin(), file_names.end());
  for (const std::string& name : file_names) DSRT_RETURN_IF_ERROR(AddFile(name));
  return absl::OkStatus();
}

bool Checkpoint::Has(absl::string_view name) const { return tensors_.contains(name); }

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, location] : tensors_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<Checkpoint::Location> Checkpoint::Find(absl::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return absl::NotFoundError(absl::StrCat("checkpoint ", dir_, ": tensor '", name, "' is missing"));
  return it->second;
}

absl::StatusOr<ir::WeightView> Checkpoint::Raw(absl::string_view name) const {
  DSRT_ASSIGN_OR_RETURN(const Location location, Find(name));
  return location.file->View(*location.tensor);
}

absl::Status Checkpoint::CheckShape(const SafetensorsTensor& tensor, const std::vector<int64_t>& expected_shape) const {
  if (tensor.shape == expected_shape) return absl::OkStatus();
  return Error(absl::StrCat("tensor '", tensor.name, "' has shape ", ShapeText(tensor.shape), ", expected ",
                            ShapeText(expected_shape)));
}

absl::StatusOr<std::vector<float>> Checkpoint::ScaleInv(const std::string& weight_name,
                                                        const std::vector<int64_t>& shape) const {
  const std::pair<int64_t, int64_t> block = config_.fp8_block_size.value_or(std::pair<int64_t, int64_t>{128, 128});
  const std::string name = ScaleInvName(weight_name);
  auto location = Find(name);
  if (!location.ok()) {
    return Error(absl::StrCat("FP8 tensor '", weight_name, "' has no scale tensor '", name, "'"));
  }
  const SafetensorsTensor& tensor = *location->tensor;
  if (tensor.dtype != ir::DType::kF32 && tensor.dtype != ir::DType::kBF16) {
    return Error(absl::StrCat("tensor '", name, "' has dtype ", ir::DTypeName(tensor.dtype), ", expected f32"));
  }
  DSRT_RETURN_IF_ERROR(CheckShape(tensor, ScaleInvShape(shape, block)));
  std::vector<float> scales(ElementCount(tensor.shape));
  ConvertToF32(location->file->View(tensor), scales);
  if (const int64_t bad = FirstNonFinite(scales); bad >= 0) {
    return Error(absl::StrCat("tensor '", name, "' has a non-finite value at index ", bad));
  }
  return scales;
}

absl::Status Checkpoint::Dequantize(const SafetensorsTensor& tensor, const ir::WeightView& view,
                                    std::vector<float>& out) const {
  if (tensor.shape.size() != 2) {
    return Error(absl::StrCat("FP8 tensor '", tensor.name, "' has shape ", ShapeText(tensor.shape),
                              "; only 2-D block-quantized weights are supported"));
  }
  DSRT_ASSIGN_OR_RETURN(const std::vector<float> scales, ScaleInv(tensor.name, tensor.shape));
  const auto [block_rows, block_cols] = config_.fp8_block_size.value_or(std::pair<int64_t, int64_t>{128, 128});
  const int64_t rows = tensor.shape[0];
  const int64_t cols = tensor.shape[1];
  const int64_t scale_cols = (cols + block_cols - 1) / block_cols;
  const std::array<float, 256>& table = F8E4M3Table();
  const auto* bytes = static_cast<const uint8_t*>(view.data);
  for (int64_t r = 0; r < rows; ++r) {
    const float* scale_row = scales.data() + (r / block_rows) * scale_cols;
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = table[bytes[r * cols + c]] * scale_row[c / block_cols];
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> Checkpoint::LoadF32(const std::string& name,
                                                       const std::vector<int64_t>& expected_shape) const {
  DSRT_ASSIGN_OR_RETURN(const Location location, Find(name));
  const SafetensorsTensor& tensor = *location.tensor;
  DSRT_RETURN_IF_ERROR(CheckShape(tensor, expected_shape));
  const ir::WeightView view = location.file->View(tensor);
  std::vector<float> values(ElementCount(tensor.shape));
  switch (tensor.dtype) {
    case ir::DType::kF32:
    case ir::DType::kBF16:
    case ir::DType::kF16:
      ConvertToF32(view, values);
      break;
    case ir::DType::kF8E4M3:
      DSRT_RETURN_IF_ERROR(Dequantize(tensor, view, values));
      break;
    default:
      return Error(absl::StrCat("tensor '", name, "' has dtype ", ir::DTypeName(tensor.dtype),
                                ", expected a float dtype (F32, BF16, F16 or F8_E4M3)"));
  }
  if (const int64_t bad = FirstNonFinite(values); bad >= 0) {
    return Error(absl::StrCat("tensor '", name, "' has a non-finite value at index ", bad));
  }
  return values;
}

absl::StatusOr<std::vector<uint16_t>> Checkpoint::LoadBF16(const std::string& name,
                                                           const std::vector<int64_t>& expected_shape) const {
  DSRT_ASSIGN_OR_RETURN(const Location location, Find(name));
  const SafetensorsTensor& tensor = *location.tensor;
  if (tensor.dtype == ir::DType::kBF16) {
    DSRT_RETURN_IF_ERROR(CheckShape(tensor, expected_shape));
    std::vector<uint16_t> bits(ElementCount(tensor.shape));
    std::memcpy(bits.data(), location.file->View(tensor).data, bits.size() * sizeof(uint16_t));
    for (size_t i = 0; i < bits.size(); ++i) {
      if ((bits[i] & 0x7f80) == 0x7f80) {
        return Error(absl::StrCat("tensor '", name, "' has a non-finite value at index ", i));
      }
    }
    return bits;
  }
  DSRT_ASSIGN_OR_RETURN(const std::vector<float> values, LoadF32(name, expected_shape));
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    bits[i] = ir::F32ToBF16(values[i]);
    if ((bits[i] & 0x7f80) == 0x7f80) {
      return Error(absl::StrCat("tensor '", name, "' has value ", values[i], " at index ", i,
                                ", which overflows bfloat16"));
    }
  }
  return bits;
}

absl::Status Checkpoint::CheckTensors(bool include_mtp) const {
  const std::pair<int64_t, int64_t> block = config_.fp8_block_size.value_or(std::pair<int64_t, int64_t>{128, 128});
  for (const TensorSpec& spec : ExpectedTensors(config_, include_mtp)) {
    DSRT_ASSIGN_OR_RETURN(const Location location, Find(spec.name));
    const SafetensorsTensor& tensor = *location.tensor;
    DSRT_RETURN_IF_ERROR(CheckShape(tensor, spec.shape));
    if (!ir::IsFloat(tensor.dtype)) {
      return Error(absl::StrCat("tensor '", spec.name, "' has dtype ", ir::DTypeName(tensor.dtype),
                                ", expected a float dtype"));
    }
    if (tensor.dtype != ir::DType::kF8E4M3) continue;
    const std::string scale_name = ScaleInvName(spec.name);
    auto scale = Find(scale_name);
    if (!scale.ok()) return Error(absl::StrCat("FP8 tensor '", spec.name, "' has no scale tensor '", scale_name, "'"));
    DSRT_RETURN_IF_ERROR(CheckShape(*scale->tensor, ScaleInvShape(spec.shape, block)));
  }
  return absl::OkStatus();
}

}  // namespace dsrt::models
