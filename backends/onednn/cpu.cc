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

// A packed weight's value at row r, column j (see VnniWeight).
int VnniValue(const VnniWeight& w, int64_t r, int64_t j) {
  const uint8_t* block = w.values + (r / kVnniRows) * w.block_bytes();
  const int64_t lane = r % kVnniRows, at = (lane / 16) * 64 + (lane % 16) * 4 + j % 4;
  if (!w.int4) return block[(j / 4) * 256 + at] - 128;
  const uint8_t byte = block[(j / 8) * 256 + at];
  return (j % 8 < 4 ? byte & 0x0f : byte >> 4) - 8;
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
                         float* scales, int32_t* sums) {
  if (Vector()) return avx512::QuantizeActivations(x, tokens, k, group_size, values, scales, sums);
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
  }
}

bool VnniPackable(int64_t k, int64_t group_size, bool int4) {
  const int64_t step = int4 ? 8 : 4;
  return k > 0 && group_size > 0 && k % step == 0 && group_size % step == 0;
}

int64_t VnniValueBytes(int64_t n, int64_t k, bool int4) {
  return VnniWeight{nullptr, nullptr, n, k, 1, int4}.blocks() * kVnniRows * (int4 ? k / 2 : k);
}

int64_t VnniScaleCount(int64_t n, int64_t k, int64_t group_size) {
  const VnniWeight w{nullptr, nullptr, n, k, group_size, false};
  return w.blocks() * w.groups() * kVnniRows;
}

namespace {

// Eight i4 values, two a byte in column order (n0 | n1 << 4, …), as VnniWeight lays
// them: byte c holds columns c and c + 4.
uint32_t InterleaveNibbles(uint32_t u) {
  // Two swaps (Hacker's Delight's outer perfect shuffle, at nibble grain): bytes 1 and
  // 2, then nibbles 1 and 2 and nibbles 5 and 6.
  uint32_t t = (u ^ (u >> 8)) & 0x0000ff00u;
  u ^= t ^ (t << 8);
  t = (u ^ (u >> 4)) & 0x00f000f0u;
  return u ^ t ^ (t << 4);
}

}  // namespace

void PackVnniBlocks(const std::vector<QuantizedRowsSource>& parts, const VnniWeight& packed, int64_t block_begin,
                    int64_t block_end) {
  const int64_t k = packed.k, groups = packed.groups(), row_bytes = packed.int4 ? k / 2 : k;
  const int64_t steps = k / (packed.int4 ? 8 : 4);
  // Offsetting every byte (i8) or nibble (i4) to unsigned flips its top bit.
  const uint32_t offset = packed.int4 ? 0x88888888u : 0x80808080u;
  auto* out_values = const_cast<uint8_t*>(packed.values);
  auto* out_scales = const_cast<float*>(packed.scales);
  for (int64_t b = block_begin; b < block_end; ++b) {
    for (int64_t lane = 0; lane < kVnniRows; ++lane) {
      // Row r's part and its row there; past the last part, a padding row of zeros.
      int64_t r = b * kVnniRows + lane;
      size_t part = 0;
      while (part < parts.size() && r >= parts[part].rows) r -= parts[part++].rows;
      const bool padding = part == parts.size();
      const auto* row = padding ? nullptr : static_cast<const uint8_t*>(parts[part].values) + r * row_bytes;
      uint8_t* out = out_values + b * packed.block_bytes() + (lane / 16) * 64 + (lane % 16) * 4;
      for (int64_t s = 0; s < steps; ++s) {
        uint32_t four = 0;
        if (!padding) std::memcpy(&four, row + 4 * s, 4);
        four = (packed.int4 ? InterleaveNibbles(four) : four) ^ offset;
        std::memcpy(out + 256 * s, &four, 4);
      }
      for (int64_t g = 0; g < groups; ++g) {
        out_scales[(b * groups + g) * kVnniRows + lane] = padding ? 0.0f : parts[part].scales[r * groups + g];
      }
    }
  }
}

void VnniRowBlocks(const QuantizedActivations& x, const VnniWeight& w, int64_t block_begin, int64_t block_end,
                   float* y, int64_t y_stride) {
  if (Vector()) return avx512::VnniRowBlocks(x, w, block_begin, block_end, y, y_stride);
  const int64_t k = w.k, groups = w.groups();
  for (int64_t r = block_begin * kVnniRows; r < std::min(w.n, block_end * kVnniRows); ++r) {
    const float* w_scales = w.scales + ((r / kVnniRows) * groups) * kVnniRows + r % kVnniRows;
    for (int64_t m = 0; m < x.tokens; ++m) {
      const int8_t* xm = x.values + m * k;
      float acc = 0;
      for (int64_t g = 0; g < groups; ++g) {
        int32_t isum = 0;
        for (int64_t j = g * w.group_size; j < std::min(k, (g + 1) * w.group_size); ++j) {
          isum += VnniValue(w, r, j) * xm[j];
        }
        acc += w_scales[g * kVnniRows] * x.scales[m * groups + g] * static_cast<float>(isum);
      }
      y[m * y_stride + r] = acc;
    }
  }
}

void DequantizeVnniRows(const VnniWeight& w, int64_t row_begin, int64_t row_end, float* out) {
  const int64_t groups = w.groups();
  for (int64_t r = row_begin; r < row_end; ++r) {
    const float* w_scales = w.scales + ((r / kVnniRows) * groups) * kVnniRows + r % kVnniRows;
    float* o = out + (r - row_begin) * w.k;
    for (int64_t j = 0; j < w.k; ++j) o[j] = static_cast<float>(VnniValue(w, r, j)) * w_scales[(j / w.group_size) * kVnniRows];
  }
}

}  // namespace dsrt::backends::onednn
