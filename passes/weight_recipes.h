#ifndef DSRT_PASSES_WEIGHT_RECIPES_H_
#define DSRT_PASSES_WEIGHT_RECIPES_H_

// Derived weights: weights that exist in no checkpoint and are computed at build time.
//
// A pass never touches weight bytes. When it needs a new weight it adds a Constant that
// says how to derive it, and the engine builder evaluates that recipe while writing the
// engine. Such a Constant has, besides `weight` (its own unique name):
//   derive        the recipe ("quantize")
//   source        the checkpoint weight it is computed from
//   source_shape  that weight's shape
// plus the recipe's parameters. The attrs stay in the engine's graph and document where
// the weight came from.
//
// Any recipe may start from a slice of its source instead of the whole matrix (the
// partition pass gives each rank its rows or columns):
//   slice_axis  0 (rows) or 1 (columns)
//   slice_start, slice_size   the range along that axis
//
// "slice": the (sliced) source itself, stored in the Constant's dtype (f32 or bf16).
//
// "quantize": symmetric group-wise weight-only quantization of a [out, in] matrix.
//   scheme      "int8" or "int4"
//   group_size  g: each output row is cut into ceil(in / g) groups of g input columns
//               (the last one may be partial)
//   part        "values" (i8 [out, in], or i4 [out, in] packed) or "scales" (f32
//               [out, ceil(in / g)])
// scale = max|w| / qmax over the group (qmax 127 for int8, 7 for int4; 1 for an all-zero
// group), q = clamp(round(w / scale), -qmax, qmax), w ≈ q * scale, |w - q*scale| <= scale/2.
// int4 packs two signed 4-bit values a byte over the row-major [out, in] elements, low
// nibble first: element k is byte k/2, bits 0-3 when k is even (column 2c of a row with
// an even `in` is the low nibble of byte c of that row).

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ir/graph.h"

namespace dsrt::passes {

// Loads a (source) weight as float32, checked to have `shape`.
using LoadF32Fn =
    std::function<absl::StatusOr<std::vector<float>>(const std::string& name, const std::vector<int64_t>& shape)>;

// Whether `constant` is a derived weight (has a `derive` attr).
bool IsDerivedWeight(const ir::Node& constant);

// The weight a derived Constant is computed from, and its shape.
absl::StatusOr<std::string> DerivedWeightSource(const ir::Node& constant);
absl::StatusOr<std::vector<int64_t>> DerivedWeightSourceShape(const ir::Node& constant);

// A short tag of how the bytes are packed, for the engine's weight table: "int8-g128".
std::string DerivedWeightScheme(const ir::Node& constant);

// Bytes of the derived weight (its Constant's type); -1 when the Constant is malformed.
int64_t DerivedWeightBytes(const ir::Node& constant);

// Attrs that make a recipe start from rows (axis 0) or columns (axis 1) start ..
// start + size - 1 of its source; and the same attrs copied from another Constant.
void AddSliceAttrs(int axis, int64_t start, int64_t size, ir::AttrMap& attrs);
void CopySliceAttrs(const ir::Node& from, ir::AttrMap& attrs);

// Computes the derived weight of `constant` into `dst` (exactly `dst_bytes` bytes),
// loading its source through `load_f32`. Errors name the weight.
absl::Status DeriveWeight(const ir::Node& constant, const LoadF32Fn& load_f32, void* dst, int64_t dst_bytes);

// The quantization math, on a row-major [rows, cols] matrix.
struct QuantizedMatrix {
  std::vector<int8_t> values;  // one per element, in [-qmax, qmax]
  std::vector<float> scales;   // [rows, ceil(cols / group_size)]
};
int QuantMax(const std::string& scheme);  // 127, 7; 0 for an unknown scheme
QuantizedMatrix QuantizeGroupwise(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t group_size,
                                  int qmax);
// Two signed 4-bit values a byte, low nibble first.
std::vector<uint8_t> PackInt4(const std::vector<int8_t>& values);
int8_t UnpackInt4(const uint8_t* packed, int64_t index);

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_WEIGHT_RECIPES_H_
