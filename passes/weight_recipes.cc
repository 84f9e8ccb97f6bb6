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

// The matrix a recipe starts from: a checkpoint weight, or a slice of one.
struct SourceMatrix {
  std::string source;
  std::vector<int64_t> source_shape;
  int64_t axis = -1;  // -1: the whole source
  int64_t start = 0;
  int64_t size = 0;

  std::vector<int64_t> shape() const {
    std::vector<int64_t> dims = source_shape;
    if (axis >= 0) dims[axis] = size;
    return dims;
  }
};

absl::StatusOr<SourceMatrix> ReadSourceMatrix(const ir::Node& c) {
  SourceMatrix m;
  const ir::AttrMap& a = c.attrs();
  m.source = a.StringOr("source", "");
  absl::StatusOr<std::vector<int64_t>> shape = a.GetInts("source_shape");
  if (m.source.empty() || !shape.ok() || shape->size() != 2 || (*shape)[0] < 1 || (*shape)[1] < 1) {
    return Malformed(c, "needs a 'source' and a 2-d 'source_shape'");
  }
  m.source_shape = *shape;
  if (!a.Has("slice_axis")) return m;
  m.axis = a.IntOr("slice_axis", -1);
  m.start = a.IntOr("slice_start", -1);
  m.size = a.IntOr("slice_size", -1);
  if (m.axis < 0 || m.axis > 1 || m.start < 0 || m.size < 1 || m.start + m.size > m.source_shape[m.axis]) {
    return Malformed(c, absl::StrCat("slice ", m.start, "+", m.size, " on axis ", m.axis, " of a source shaped [",
                                     m.source_shape[0], ",", m.source_shape[1], "]"));
  }
  return m;
}

// The source matrix as f32, sliced, checked finite.
absl::StatusOr<std::vector<float>> LoadSourceMatrix(const ir::Node& c, const SourceMatrix& m, const LoadF32Fn& load_f32) {
  DSRT_ASSIGN_OR_RETURN(std::vector<float> w, load_f32(m.source, m.source_shape));
  const int64_t rows = m.source_shape[0], cols = m.source_shape[1];
  if (static_cast<int64_t>(w.size()) != rows * cols) {
    return Malformed(c, absl::StrCat("source '", m.source, "' loaded with ", w.size(), " values"));
  }
  for (size_t i = 0; i < w.size(); ++i) {
    if (!std::isfinite(w[i])) return Malformed(c, absl::StrCat("source '", m.source, "' has a non-finite value at ", i));
  }
  if (m.axis == 0) return std::vector<float>(w.begin() + m.start * cols, w.begin() + (m.start + m.size) * cols);
  if (m.axis == 1) {
    std::vector<float> sliced;
    sliced.reserve(rows * m.size);
    for (int64_t r = 0; r < rows; ++r) {
      sliced.insert(sliced.end(), w.begin() + r * cols + m.start, w.begin() + r * cols + m.start + m.size);
    }
    return sliced;
  }
  return w;
}

std::vector<int64_t> StaticDims(const ir::TensorType& t) {
  std::vector<int64_t> dims;
  for (const ir::Dim& d : t.dims) dims.push_back(d.size);
  return dims;
}

// "slice": the source's slice in the Constant's float dtype.
absl::Status CheckSliceRecipe(const ir::Node& c, const SourceMatrix& m) {
  const ir::TensorType& t = c.output()->type();
  if (m.axis < 0) return Malformed(c, "a slice needs 'slice_axis', 'slice_start' and 'slice_size'");
  if (!ir::IsFloat(t.dtype) || StaticDims(t) != m.shape()) {
    return Malformed(c, absl::StrCat("must be a float [", m.shape()[0], ",", m.shape()[1], "], not ", t.ToString()));
  }
  return absl::OkStatus();
}

struct QuantizeRecipe {
  SourceMatrix matrix;
  std::string scheme;
  int64_t group_size = 0;
  std::string part;
  int qmax = 0;
};

absl::StatusOr<QuantizeRecipe> ReadQuantizeRecipe(const ir::Node& c) {
  QuantizeRecipe r;
  const ir::AttrMap& a = c.attrs();
  DSRT_ASSIGN_OR_RETURN(r.matrix, ReadSourceMatrix(c));
  r.scheme = a.StringOr("scheme", "");
  r.group_size = a.IntOr("group_size", 0);
  r.part = a.StringOr("part", "");
  r.qmax = QuantMax(r.scheme);
  if (r.qmax == 0) return Malformed(c, absl::StrCat("unknown scheme '", r.scheme, "' (int8 or int4)"));
  if (r.group_size < 1) return Malformed(c, absl::StrCat("group_size ", r.group_size, " must be positive"));
  const std::vector<int64_t> matrix_shape = r.matrix.shape();
  const int64_t rows = matrix_shape[0], cols = matrix_shape[1];
  const ir::TensorType& t = c.output()->type();
  const std::vector<int64_t> dims = StaticDims(t);
  if (r.part == "values") {
    const ir::DType want = r.scheme == "int8" ? ir::DType::kI8 : ir::DType::kI4;
    if (t.dtype != want || dims != matrix_shape) {
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
  if (a.StringOr("derive", "") == "slice") return "";
  return absl::StrCat(a.StringOr("scheme", "?"), "-g", a.IntOr("group_size", 0));
}

// Whether the Constant's attrs make a recipe this file knows.
absl::Status CheckRecipe(const ir::Node& constant) {
  const std::string recipe = constant.attrs().StringOr("derive", "");
  if (recipe == "quantize") return ReadQuantizeRecipe(constant).status();
  if (recipe == "slice") {
    DSRT_ASSIGN_OR_RETURN(SourceMatrix m, ReadSourceMatrix(constant));
    return CheckSliceRecipe(constant, m);
  }
  return Malformed(constant, absl::StrCat("unknown recipe '", recipe, "'"));
}

int64_t DerivedWeightBytes(const ir::Node& constant) {
  if (!IsDerivedWeight(constant) || !CheckRecipe(constant).ok()) return -1;
  const ir::TensorType& t = constant.output()->type();
  return ir::DTypeBytes(t.dtype, ir::NumElements(StaticDims(t)));
}

void AddSliceAttrs(int axis, int64_t start, int64_t size, ir::AttrMap& attrs) {
  attrs.Set("slice_axis", int64_t{axis});
  attrs.Set("slice_start", start);
  attrs.Set("slice_size", size);
}

void CopySliceAttrs(const ir::Node& from, ir::AttrMap& attrs) {
  for (const char* name : {"slice_axis", "slice_start", "slice_size"}) {
    if (from.attrs().Has(name)) attrs.Set(name, from.attrs().IntOr(name, 0));
  }
}

absl::Status DeriveSlice(const ir::Node& constant, const LoadF32Fn& load_f32, void* dst) {
  DSRT_ASSIGN_OR_RETURN(SourceMatrix m, ReadSourceMatrix(constant));
  DSRT_RETURN_IF_ERROR(CheckSliceRecipe(constant, m));
  DSRT_ASSIGN_OR_RETURN(std::vector<float> w, LoadSourceMatrix(constant, m, load_f32));
  switch (constant.output()->type().dtype) {
    case ir::DType::kF32:
      std::memcpy(dst, w.data(), w.size() * sizeof(float));
      return absl::OkStatus();
    case ir::DType::kBF16:
      for (size_t i = 0; i < w.size(); ++i) static_cast<uint16_t*>(dst)[i] = ir::F32ToBF16(w[i]);
      return absl::OkStatus();
    default:
      return Malformed(constant, "a slice is stored as f32 or bf16");
  }
}

absl::Status DeriveWeight(const ir::Node& constant, const LoadF32Fn& load_f32, void* dst, int64_t dst_bytes) {
  DSRT_RETURN_IF_ERROR(CheckRecipe(constant));
  if (dst_bytes != DerivedWeightBytes(constant)) {
    return Malformed(constant, absl::StrCat("destination holds ", dst_bytes, " bytes, the weight needs ",
                                            DerivedWeightBytes(constant)));
  }
  if (constant.attrs().StringOr("derive", "") == "slice") return DeriveSlice(constant, load_f32, dst);
  DSRT_ASSIGN_OR_RETURN(QuantizeRecipe r, ReadQuantizeRecipe(constant));
  DSRT_ASSIGN_OR_RETURN(std::vector<float> w, LoadSourceMatrix(constant, r.matrix, load_f32));
  const std::vector<int64_t> shape = r.matrix.shape();
  const QuantizedMatrix q = QuantizeGroupwise(w, shape[0], shape[1], r.group_size, r.qmax);
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
