#include "ir/dtype.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace dsrt::ir {
namespace {

struct DTypeInfo {
  DType dtype;
  absl::string_view name;
  int bits;
  bool is_float;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kF32, "f32", 32, true},     {DType::kBF16, "bf16", 16, true},
    {DType::kF16, "f16", 16, true},     {DType::kF8E4M3, "f8e4m3", 8, true},
    {DType::kI32, "i32", 32, false},    {DType::kI64, "i64", 64, false},
    {DType::kI8, "i8", 8, false},       {DType::kI4, "i4", 4, false},
    {DType::kU8, "u8", 8, false},
};

const DTypeInfo& Info(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  return kDTypes[0];
}

}  // namespace

absl::string_view DTypeName(DType dtype) { return Info(dtype).name; }

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.name == name) return info.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype '", name, "'"));
}

int DTypeBits(DType dtype) { return Info(dtype).bits; }

int64_t DTypeBytes(DType dtype, int64_t count) { return (count * DTypeBits(dtype) + 7) / 8; }

bool IsFloat(DType dtype) { return Info(dtype).is_float; }

float F16ToF32(uint16_t bits) {
  const int sign = bits >> 15;
  const int exponent = (bits >> 10) & 0x1f;
  const int mantissa = bits & 0x3ff;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
  }
  return sign ? -magnitude : magnitude;
}

float F8E4M3ToF32(uint8_t bits) {
  const int sign = bits >> 7;
  const int exponent = (bits >> 3) & 0xf;
  const int mantissa = bits & 0x7;
  float magnitude;
  if (exponent == 0xf && mantissa == 0x7) {
    magnitude = std::numeric_limits<float>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -9);  // subnormal: m/8 * 2^-6
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x8), exponent - 10);
  }
  return sign ? -magnitude : magnitude;
}

}  // namespace dsrt::ir
