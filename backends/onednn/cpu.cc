#include "backends/onednn/cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backends/onednn/cpu_avx512.h"
#include "ir/dtype.h"

namespace dsrt::backends::onednn {
namespace {

bool force_plain = std::getenv("DSRT_NO_AVX512") != nullptr && std::string(std::getenv("DSRT_NO_AVX512")) != "0";

bool Vector() { return !force_plain && Cpu().avx512 && Cpu().avx512_bf16 && Cpu().avx512_vnni; }

int8_t Quantize(float x, float inv_scale) {
  const float q = std::nearbyint(x * inv_scale);
  return static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
}

int Nibble(const uint8_t* w, int64_t i) {
  const int nibble = i % 2 == 0 ? (w[i / 2] & 0x0f) : (w[i / 2] >> 4);
  return nibble >= 8 ? nibble - 16 : nibble;
}

template <typename WeightAt>
void PlainQuantizedRows(const QuantizedActivations& x, WeightAt weight, const float* w_scales, int64_t k,
                        int64_t group_size, int64_t row_begin, int64_t row_end, float* y, int64_t y_stride) {
  const int64_t groups = (k + group_size - 1) / group_size;
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t m = 0; m < x.tokens; ++m) {
      const int8_t* xm = x.values + m * k;
      float acc = 0;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t isum = 0;
        for (int64_t j = g * group_size; j < std::min(k, (g + 1) * group_size); ++j) isum += weight(r, j) * xm[j];
        acc += w_scales[r * groups + g] * x.scales[m * groups + g] * static_cast<float>(isum);
      }
      y[m * y_stride + r] = acc;
    }
  }
}

}  // namespace

const CpuFeatures& Cpu() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
    __builtin_cpu_init();
    f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
    f.avx512_vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
    return f;
  }();
  return features;
}

void ForcePlainKernels(bool plain) { force_plain = plain; }
bool UsingAvx512() { return Vector(); }

void RotateInterleaved(const float* x, const int32_t* positions, int64_t tokens, int64_t rows_per_token,
                       const std::vector<float>& inv_freq, double scale, float* out) {
  const int64_t half = static_cast<int64_t>(inv_freq.size());
  thread_local std::vector<float> cos, sin;
  cos.resize(half);
  sin.resize(half);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(positions[t]) * inv_freq[i];
      cos[i] = static_cast<float>(std::cos(angle) * scale);
      sin[i] = static_cast<float>(std::sin(angle) * scale);
    }
    for (int64_t r = 0; r < rows_per_token; ++r) {
      const int64_t base = (t * rows_per_token + r) * 2 * half;
      for (int64_t i = 0; i < half; ++i) {
        const float x0 = x[base + 2 * i], x1 = x[base + 2 * i + 1];
        out[base + 2 * i] = x0 * cos[i] - x1 * sin[i];
        out[base + 2 * i + 1] = x0 * sin[i] + x1 * cos[i];
      }
    }
  }
}

void F32ToBf16(const float* src, uint16_t* dst, int64_t n) {
  if (Vector()) return avx512::F32ToBf16(src, dst, n);
  for (int64_t i = 0; i < n; ++i) dst[i] = ir::F32ToBF16(src[i]);
}

void Bf16ToF32(const uint16_t* src, float* dst, int64_t n) {
  if (Vector()) return avx512::Bf16ToF32(src, dst, n);
  for (int64_t i = 0; i < n; ++i) dst[i] = ir::BF16ToF32(src[i]);
}

void SiluMul(const float* gate, const float* up, int64_t n, bool round_silu_to_bf16, float* out) {
  if (Vector()) return avx512::SiluMul(gate, up, n, round_silu_to_bf16, out);
  for (int64_t i = 0; i < n; ++i) {
    const float silu = static_cast<float>(gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i]))));
    out[i] = (round_silu_to_bf16 ? ir::RoundToBF16(silu) : silu) * up[i];
  }
}

float SumF32(const float* x, int64_t n) {
  if (Vector()) return avx512::SumF32(x, n);
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j];
  }
  for (; i < n; ++i) acc[0] += x[i];
  float total = 0;
  for (float a : acc) total += a;
  return total;
}

float DotF32(const float* a, const float* b, int64_t n) {
  if (Vector()) return avx512::DotF32(a, b, n);
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  if (Vector()) return avx512::Axpy(a, x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void AxpyBf16(float a, const uint16_t* x, float* y, int64_t n) {
  if (Vector()) return avx512::AxpyBf16(a, x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] += a * ir::BF16ToF32(x[i]);
}

float DotBf16(const float* a, const uint16_t* b, int64_t n) {
  if (Vector()) return avx512::DotBf16(a, b, n);
  float acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += a[i] * ir::BF16ToF32(b[i]);
  return acc;
}

int64_t Bf16GemvPackedElements(int64_t k, int64_t n) {
  return (n + kGemvBlock - 1) / kGemvBlock * ((k + 1) / 2) * kGemvBlock * 2;
}

// packed[((b · k2 + p) · kGemvBlock + c) · 2 + s] = W[2p + s, b · kGemvBlock + c].
void PackBf16Gemv(const uint16_t* w, int64_t k, int64_t n, int64_t k_stride, int64_t n_stride, uint16_t* packed) {
  const int64_t k2 = (k + 1) / 2, blocks = (n + kGemvBlock - 1) / kGemvBlock;
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t p = 0; p < k2; ++p) {
      for (int64_t c = 0; c < kGemvBlock; ++c) {
        for (int64_t s = 0; s < 2; ++s) {
          const int64_t i = 2 * p + s, j = b * kGemvBlock + c;
          packed[((b * k2 + p) * kGemvBlock + c) * 2 + s] = i < k && j < n ? w[i * k_stride + j * n_stride] : 0;
        }
      }
    }
  }
}

void Bf16Gemv(const uint16_t* x, const uint16_t* packed, int64_t k, int64_t n, float* y) {
  if (Vector()) return avx512::Bf16Gemv(x, packed, k, n, y);
  const int64_t k2 = (k + 1) / 2;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t b = j / kGemvBlock, c = j % kGemvBlock;
    float acc = 0;
    for (int64_t i = 0; i < k; ++i) {
      acc += ir::BF16ToF32(x[i]) * ir::BF16ToF32(packed[((b * k2 + i / 2) * kGemvBlock + c) * 2 + i % 2]);
    }
    y[j] = acc;
  }
}

void QuantizeActivations(const float* x, int64_t tokens, int64_t k, int64_t group_size, int8_t* values,
                         int8_t* even_odd, float* scales, int32_t* sums) {
  if (Vector()) return avx512::QuantizeActivations(x, tokens, k, group_size, values, even_odd, scales, sums);
  const int64_t groups = (k + group_size - 1) / group_size;
  for (int64_t m = 0; m < tokens; ++m) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = g * group_size, width = std::min(k, begin + group_size) - begin;
      const float* xg = x + m * k + begin;
      int8_t* qg = values + m * k + begin;
      float max_abs = 0;
      for (int64_t j = 0; j < width; ++j) max_abs = std::max(max_abs, std::fabs(xg[j]));
      const float scale = max_abs / 127.0f;
      const float inv_scale = max_abs > 0 ? 127.0f / max_abs : 0.0f;
      int32_t sum = 0;
      for (int64_t j = 0; j < width; ++j) sum += (qg[j] = Quantize(xg[j], inv_scale));
      scales[m * groups + g] = scale;
      sums[m * groups + g] = sum;
    }
    if (even_odd == nullptr) continue;
    // Blocks of 128 (then one of 64 at the end): their even elements, then their odd ones.
    for (int64_t base = 0; base < k; base += 128) {
      const int64_t half = std::min<int64_t>(64, (k - base) / 2);
      const int8_t* src = values + m * k + base;
      int8_t* dst = even_odd + m * k + base;
      for (int64_t i = 0; i < half; ++i) {
        dst[i] = src[2 * i];
        dst[half + i] = src[2 * i + 1];
      }
    }
  }
}

void QuantizedRowsI8(const QuantizedActivations& x, const int8_t* w, const float* w_scales, int64_t k,
                     int64_t group_size, int64_t row_begin, int64_t row_end, float* y, int64_t y_stride) {
  if (Vector()) return avx512::QuantizedRowsI8(x, w, w_scales, k, group_size, row_begin, row_end, y, y_stride);
  PlainQuantizedRows(
      x, [&](int64_t r, int64_t j) { return static_cast<int32_t>(w[r * k + j]); }, w_scales, k, group_size, row_begin,
      row_end, y, y_stride);
}

void QuantizedRowsI4(const QuantizedActivations& x, const uint8_t* w, const float* w_scales, int64_t k,
                     int64_t group_size, int64_t row_begin, int64_t row_end, float* y, int64_t y_stride) {
  if (Vector()) return avx512::QuantizedRowsI4(x, w, w_scales, k, group_size, row_begin, row_end, y, y_stride);
  PlainQuantizedRows(
      x, [&](int64_t r, int64_t j) { return Nibble(w, r * k + j); }, w_scales, k, group_size, row_begin, row_end,
      y, y_stride);
}

void DequantizeRowsF32(const void* w, bool int4, const float* w_scales, int64_t k, int64_t group_size,
                       int64_t row_begin, int64_t row_end, float* out) {
  const int64_t groups = (k + group_size - 1) / group_size;
  const auto* bytes = static_cast<const uint8_t*>(w);
  for (int64_t r = row_begin; r < row_end; ++r) {
    float* o = out + (r - row_begin) * k;
    for (int64_t j = 0; j < k; ++j) {
      const int value = int4 ? Nibble(bytes, r * k + j) : static_cast<int8_t>(bytes[r * k + j]);
      o[j] = static_cast<float>(value) * w_scales[r * groups + j / group_size];
    }
  }
}

void DequantizeRowsBf16(const void* w, bool int4, const float* w_scales, int64_t k, int64_t group_size,
                        int64_t row_begin, int64_t row_end, uint16_t* out) {
  if (Vector() && k % 32 == 0 && group_size % 32 == 0 && (!int4 || k % 2 == 0)) {
    return avx512::DequantizeRowsBf16(w, int4, w_scales, k, group_size, row_begin, row_end, out);
  }
  thread_local std::vector<float> row;
  row.resize(k);
  for (int64_t r = row_begin; r < row_end; ++r) {
    DequantizeRowsF32(w, int4, w_scales, k, group_size, r, r + 1, row.data());
    F32ToBf16(row.data(), out + (r - row_begin) * k, k);
  }
}

}  // namespace dsrt::backends::onednn
