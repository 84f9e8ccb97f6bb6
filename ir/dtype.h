#ifndef DSRT_IR_DTYPE_H_
#define DSRT_IR_DTYPE_H_

#include <cstdint>
#include <cstring>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace dsrt::ir {

// Element types of tensors in graphs, checkpoints and engines.
// kI4 packs two signed 4-bit values a byte (low nibble first).
enum class DType : int {
  kF32 = 1,
  kBF16 = 2,
  kF16 = 3,
  kF8E4M3 = 4,
  kI32 = 5,
  kI64 = 6,
  kI8 = 7,
  kI4 = 8,
  kU8 = 9,
};

absl::string_view DTypeName(DType dtype);  // "f32", "bf16", ...
absl::StatusOr<DType> ParseDType(absl::string_view name);

// Bits a value occupies (4 for kI4).
int DTypeBits(DType dtype);
// Bytes taken by `count` elements, rounding a trailing half byte up.
int64_t DTypeBytes(DType dtype, int64_t count);
bool IsFloat(DType dtype);

inline float BF16ToF32(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Round to nearest even, as every bf16 conversion in PyTorch and oneDNN does.
inline uint16_t F32ToBF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float RoundToBF16(float f) { return BF16ToF32(F32ToBF16(f)); }

float F16ToF32(uint16_t bits);
// FP8 E4M3 ("e4m3fn": bias 7, no infinities, S.1111.111 is NaN).
float F8E4M3ToF32(uint8_t bits);

}  // namespace dsrt::ir

#endif  // DSRT_IR_DTYPE_H_
