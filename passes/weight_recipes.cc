#include "passes/weight_recipes.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"

namespace dsrt::passes {
namespace {

absl::Status Malformed(const ir::Node& constant, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("derived weight '", constant.attrs().StringOr("weight", "?"), "': ", why));
}

struct QuantizeRecipe {
  std::string source;
  std::vector<int64_t> source_shape;
  std::string scheme;
  int64_t group_size = 0;
  std::string part;
  int qmax = 0;
};

absl::StatusOr<QuantizeRecipe> ReadQuantizeRecipe(const ir::Node& c) {
  QuantizeRecipe r;
  const ir::AttrMap& a = c.attrs();
  r.source = a.StringOr("source", "");
  r.scheme = a.StringOr("scheme", "");
  r.group_size = a.IntOr("group_size", 0);
  r.part = a.StringOr("part", "");
  absl::StatusOr<std::vector<int64_t>> shape = a.GetInts("source_shape");
  if (r.source.empty() || !shape.ok() || shape->size() != 2 || (*shape)[0] < 1 || (*shape)[1] < 1) {
    return Malformed(c, "needs a 'source' and a 2-d 'source_shape'");
  }
  r.source_shape = *shape;
  r.qmax = QuantMax(r.scheme);
  if (r.qmax == 0) return Malformed(c, absl::StrCat("unknown scheme '", r.scheme, "' (int8 or int4)"));
  if (r.group_size < 1) return Malformed(c, absl::StrCat("group_size ", r.group_size, " must be positive"));
  const int64_t rows = r.source_shape[0], cols = r.source_shape[1];
  const ir::TensorType& t = c.output()->type();
  std::vector<int64_t> dims;
  for (const ir::Dim& d : t.dims) dims.push_back(d.size);
  if (r.part == "values") {
    const ir::DType want = r.scheme == "int8" ? ir::DType::kI8 : ir::DType::kI4;
    if (t.dtype != want || dims != r.source_shape) {
      return Malformed(c, absl::StrCat("values must be ", ir::DTypeName(want), "[", rows, ",", cols, "], not ",
                                       t.ToString()));
    }
  } else if (r.part == "scales") {
    const int64_t groups = (cols + r.group_size - 1) / r.group_size;
    if (t.dtype != ir::DType::kF32 || dims != std::vector<int64_t>{rows, groups}) {
      return Malformed(c, absl::StrCat("scales must be f32[", rows, ",", groups, "], not ", t.ToString()));
    }
  } else {
    return Malformed(c, absl::StrCat("unknown part '", r.part, "' (values or scales)"));
  }
  return r;
}

}  // namespace

int QuantMax(const std::string& scheme) {
  if (scheme == "int8") return 127;
  if (scheme == "int4") return 7;
  return 0;
}

QuantizedMatrix QuantizeGroupwise(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t group_size,
                                  int qmax) {
  const int64_t groups = (cols + group_size - 1) / group_size;
  QuantizedMatrix q;
  q.values.resize(rows * cols);
  q.scales.resize(rows * groups);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = g * group_size, end = std::min(cols, begin + group_size);
      float max_abs = 0;
      for (int64_t j = begin; j < end; ++j) max_abs = std::max(max_abs, std::abs(w[r * cols + j]));
      const float scale = max_abs > 0 ? max_abs / static_cast<float>(qmax) : 1.0f;
      q.scales[r * groups + g] = scale;
      for (int64_t j = begin; j < end; ++j) {
        const float v = std::nearbyint(w[r * cols + j] / scale);
        q.values[r * cols + j] = static_cast<int8_t>(std::clamp(v, static_cast<float>(-qmax), static_cast<float>(qmax)));
      }
    }
  }
  return q;
}

std::vector<uint8_t> PackInt4(const std::vector<int8_t>& values) {
  std::vector<uint8_t> packed((values.size() + 1) / 2, 0);
  for (size_t k = 0; k < values.size(); ++k) {
    const uint8_t nibble = static_cast<uint8_t>(values[k]) & 0x0f;
    packed[k / 2] |= (k % 2 == 0) ? nibble : static_cast<uint8_t>(nibble << 4);
  }
  return packed;
}

int8_t UnpackInt4(const uint8_t* packed, int64_t index) {
  const uint8_t byte = packed[index / 2];
  const int nibble = index % 2 == 0 ? (byte & 0x0f) : (byte >> 4);
  return static_cast<int8_t>(nibble >= 8 ? nibble - 16 : nibble);
}

bool IsDerivedWeight(const ir::Node& constant) {
  return constant.op() == "Constant" && constant.attrs().Has("derive");
}

absl::StatusOr<std::string> DerivedWeightSource(const ir::Node& constant) {
  std::string source = constant.attrs().StringOr("source", "");
  if (source.empty()) return Malformed(constant, "has no 'source'");
  return source;
}

absl::StatusOr<std::vector<int64_t>> DerivedWeightSourceShape(const ir::Node& constant) {
  absl::StatusOr<std::vector<int64_t>> shape = constant.attrs().GetInts("source_shape");
  if (!shape.ok()) return Malformed(constant, "has no 'source_shape'");
  return shape;
}

std::string DerivedWeightScheme(const ir::Node& constant) {
  const ir::AttrMap& a = constant.attrs();
  return absl::StrCat(a.StringOr("scheme", "?"), "-g", a.IntOr("group_size", 0));
}

int64_t DerivedWeightBytes(const ir::Node& constant) {
  if (!IsDerivedWeight(constant) || !ReadQuantizeRecipe(constant).ok()) return -1;
  const ir::TensorType& t = constant.output()->type();
  int64_t n = 1;
  for (const ir::Dim& d : t.dims) n *= d.size;
  return ir::DTypeBytes(t.dtype, n);
}

absl::Status DeriveWeight(const ir::Node& constant, const LoadF32Fn& load_f32, void* dst, int64_t dst_bytes) {
  const std::string recipe = constant.attrs().StringOr("derive", "");
  if (recipe != "quantize") return Malformed(constant, absl::StrCat("unknown recipe '", recipe, "'"));
  DSRT_ASSIGN_OR_RETURN(QuantizeRecipe r, ReadQuantizeRecipe(constant));
  if (dst_bytes != DerivedWeightBytes(constant)) {
    return Malformed(constant, absl::StrCat("destination holds ", dst_bytes, " bytes, the weight needs ",
                                            DerivedWeightBytes(constant)));
  }
  DSRT_ASSIGN_OR_RETURN(std::vector<float> w, load_f32(r.source, r.source_shape));
  if (static_cast<int64_t>(w.size()) != r.source_shape[0] * r.source_shape[1]) {
    return Malformed(constant, absl::StrCat("source '", r.source, "' loaded with ", w.size(), " values"));
  }
  for (size_t i = 0; i < w.size(); ++i) {
    if (!std::isfinite(w[i])) return Malformed(constant, absl::StrCat("source '", r.source, "' has a non-finite value at ", i));
  }
  const QuantizedMatrix q = QuantizeGroupwise(w, r.source_shape[0], r.source_shape[1], r.group_size, r.qmax);
  if (r.part == "scales") {
    std::memcpy(dst, q.scales.data(), q.scales.size() * sizeof(float));
  } else if (r.scheme == "int8") {
    std::memcpy(dst, q.values.data(), q.values.size());
  } else {
    const std::vector<uint8_t> packed = PackInt4(q.values);
    std::memcpy(dst, packed.data(), packed.size());
  }
  return absl::OkStatus();
}

}  // namespace dsrt::passes
