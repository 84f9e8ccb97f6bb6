#include "backends/onednn/cpu_avx512.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace dsrt::backends::onednn::avx512 {
namespace {

__mmask16 Tail16(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }

__m512 LoadBf16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}

__m512 LoadBf16Masked(const uint16_t* p, __mmask16 mask) {
  const __m256i bits = _mm256_maskz_loadu_epi16(mask, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// e^x in f32 to about an ulp: x = n ln2 + r with |r| ≤ ln2 / 2, e^r by its Taylor
// series to r^7 (the first term left out is below 6e-9 relative), then scaled by 2^n.
__m512 Exp(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.8f)), _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln2's high bits: n · it is exact
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  for (const float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) {
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  }
  return _mm512_scalef_ps(p, n);
}

}  // namespace

void F32ToBf16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256((__m256i*)(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
  }
  if (i < n) {
    const __mmask16 m = Tail16(n - i);
    _mm256_mask_storeu_epi16(dst + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i)));
  }
}

void Bf16ToF32(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, LoadBf16(src + i));
  if (i < n) _mm512_mask_storeu_ps(dst + i, Tail16(n - i), LoadBf16Masked(src + i, Tail16(n - i)));
}

void SiluMul(const float* gate, const float* up, int64_t n, bool round_silu_to_bf16, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = Tail16(std::min<int64_t>(16, n - i));
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    __m512 silu = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), Exp(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    if (round_silu_to_bf16) silu = _mm512_cvtpbh_ps(_mm512_cvtneps_pbh(silu));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

float SumF32(const float* x, int64_t n) {
  __m512 acc[8];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 128 <= n; i += 128) {
    for (int j = 0; j < 8; ++j) acc[j] = _mm512_add_ps(acc[j], _mm512_loadu_ps(x + i + 16 * j));
  }
  float tail = 0;
  for (; i < n; ++i) tail += x[i];
  for (int j = 1; j < 8; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  return _mm512_reduce_add_ps(acc[0]) + tail;
}

float DotF32(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = Tail16(std::min<int64_t>(16, n - i));
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = Tail16(std::min<int64_t>(16, n - i));
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void AxpyBf16(float a, const uint16_t* x, float* y, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = Tail16(std::min<int64_t>(16, n - i));
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, LoadBf16Masked(x + i, m), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

float DotBf16(const float* a, const uint16_t* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = Tail16(std::min<int64_t>(16, n - i));
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), LoadBf16Masked(b + i, m), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

void Bf16Gemv(const uint16_t* x, const uint16_t* packed, int64_t k, int64_t n, float* y) {
  constexpr int kVectors = kGemvBlock / 16;
  const int64_t k2 = (k + 1) / 2;
  for (int64_t b = 0; b * kGemvBlock < n; ++b) {
    __m512 acc[kVectors];
    for (__m512& a : acc) a = _mm512_setzero_ps();
    const uint16_t* block = packed + b * k2 * kGemvBlock * 2;
    for (int64_t p = 0; p < k2; ++p) {
      const uint32_t pair = 2 * p + 1 < k ? x[2 * p] | static_cast<uint32_t>(x[2 * p + 1]) << 16 : x[2 * p];
      const __m512bh xp = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
      const uint16_t* w = block + p * kGemvBlock * 2;
      for (int v = 0; v < kVectors; ++v) {
        acc[v] = _mm512_dpbf16_ps(acc[v], xp, (__m512bh)_mm512_loadu_si512(w + v * 32));
      }
    }
    for (int v = 0; v < kVectors; ++v) {
      const int64_t j = b * kGemvBlock + v * 16;
      if (j < n) _mm512_mask_storeu_ps(y + j, Tail16(std::min<int64_t>(16, n - j)), acc[v]);
    }
  }
}

namespace {

// One group of activations as int8 with scale max|x| / 127; returns the bytes' sum.
int32_t QuantizeGroup(const float* x, int64_t width, int8_t* q, float* scale) {
  __m512 max_abs = _mm512_setzero_ps();
  for (int64_t j = 0; j < width; j += 16) {
    const __mmask16 m = Tail16(std::min<int64_t>(16, width - j));
    max_abs = _mm512_max_ps(max_abs, _mm512_abs_ps(_mm512_maskz_loadu_ps(m, x + j)));
  }
  const float largest = _mm512_reduce_max_ps(max_abs);
  *scale = largest / 127.0f;
  const __m512 inv_scale = _mm512_set1_ps(largest > 0 ? 127.0f / largest : 0.0f);
  __m512i sum = _mm512_setzero_si512();
  for (int64_t j = 0; j < width; j += 16) {
    const __mmask16 m = Tail16(std::min<int64_t>(16, width - j));
    __m512i v = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), inv_scale),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_max_epi32(_mm512_min_epi32(v, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
    sum = _mm512_add_epi32(sum, v);
    _mm_mask_storeu_epi8(q + j, m, _mm512_cvtepi32_epi8(v));
  }
  return _mm512_reduce_add_epi32(sum);
}

}  // namespace

void QuantizeActivations(const float* x, int64_t tokens, int64_t k, int64_t group_size, int8_t* values,
                         float* scales, int32_t* sums) {
  const int64_t groups = (k + group_size - 1) / group_size;
  for (int64_t m = 0; m < tokens; ++m) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = g * group_size, width = std::min(k, begin + group_size) - begin;
      sums[m * groups + g] = QuantizeGroup(x + m * k + begin, width, values + m * k + begin, &scales[m * groups + g]);
    }
  }
}

namespace {

// Four activation bytes (one column step's) in every 32-bit lane.
__m512i Broadcast4(const int8_t* x) {
  int32_t four;
  std::memcpy(&four, x, 4);
  return _mm512_set1_epi32(four);
}

// One column step of a block (4 i8 or 8 i4 columns of its 64 rows, four vectors at p)
// into the accumulators of Tile tokens; with HiChains (one i4 token) the high nibbles'
// products go to acc_hi.
template <int Tile, bool Int4, bool HiChains>
[[gnu::always_inline]] inline void ColumnStep(const uint8_t* p, const int8_t* const (&xr)[Tile], int64_t j, __m512i (&acc)[Tile][4],
                __m512i (&acc_hi)[4]) {
  static_assert(!HiChains || (Int4 && Tile == 1));
  __m512i wv[4];
  for (int v = 0; v < 4; ++v) wv[v] = _mm512_loadu_si512(p + 64 * v);
  if constexpr (!Int4) {
    for (int t = 0; t < Tile; ++t) {
      const __m512i xb = Broadcast4(xr[t] + j);
      for (int v = 0; v < 4; ++v) acc[t][v] = _mm512_dpbusd_epi32(acc[t][v], wv[v], xb);
    }
    return;
  }
  const __m512i low_nibbles = _mm512_set1_epi8(0x0f);
  __m512i lo[4];
  for (int v = 0; v < 4; ++v) lo[v] = _mm512_and_si512(wv[v], low_nibbles);
  for (int t = 0; t < Tile; ++t) {
    const __m512i xb = Broadcast4(xr[t] + j);
    for (int v = 0; v < 4; ++v) acc[t][v] = _mm512_dpbusd_epi32(acc[t][v], lo[v], xb);
  }
  for (int v = 0; v < 4; ++v) wv[v] = _mm512_and_si512(_mm512_srli_epi16(wv[v], 4), low_nibbles);
  for (int t = 0; t < Tile; ++t) {
    const __m512i xb = Broadcast4(xr[t] + j + 4);
    for (int v = 0; v < 4; ++v) {
      __m512i& chain = HiChains ? acc_hi[v] : acc[t][v];
      chain = _mm512_dpbusd_epi32(chain, wv[v], xb);
    }
  }
}

// One block of 64 rows times tokens m0 .. m0 + Tile: per column step, four weight
// vectors (16 rows each) serve every token, and one broadcast of a token's four bytes
// serves 16 rows; the Tile × 4 accumulators are independent chains. The weight bytes
// are offset to unsigned (i8 + 128, i4 + 8), so each group's accumulator starts at
// −offset × that group's activation sum. Rows past n are not stored.
template <int Tile, bool Int4>
void VnniBlockTile(const QuantizedActivations& x, const VnniWeight& w, int64_t block, int64_t m0, float* y,
                   int64_t y_stride) {
  const int64_t k = w.k, groups = w.groups();
  const uint8_t* wb = w.values + block * w.block_bytes();
  const float* sb = w.scales + block * groups * kVnniRows;
  const int8_t* xr[Tile];
  for (int t = 0; t < Tile; ++t) xr[t] = x.values + (m0 + t) * k;
  __m512 out[Tile][4];
  for (int t = 0; t < Tile; ++t) {
    for (int v = 0; v < 4; ++v) out[t][v] = _mm512_setzero_ps();
  }
  for (int64_t g = 0; g < groups; ++g) {
    __m512i acc[Tile][4];
    for (int t = 0; t < Tile; ++t) {
      const __m512i start = _mm512_set1_epi32(-(Int4 ? 8 : 128) * x.sums[(m0 + t) * groups + g]);
      for (int v = 0; v < 4; ++v) acc[t][v] = start;
    }
    // One token: the high nibbles' products go to chains of their own, so that eight
    // independent chains cover vpdpbusd's latency.
    constexpr bool kHiChains = Int4 && Tile == 1;
    __m512i acc_hi[4];
    for (int v = 0; v < 4; ++v) acc_hi[v] = _mm512_setzero_si512();
    const int64_t end = std::min(k, (g + 1) * w.group_size);
    for (int64_t j = g * w.group_size; j < end; j += Int4 ? 8 : 4) {
      ColumnStep<Tile, Int4, kHiChains>(wb + j * (Int4 ? 32 : 64), xr, j, acc, acc_hi);
    }
    if constexpr (kHiChains) {
      for (int v = 0; v < 4; ++v) acc[0][v] = _mm512_add_epi32(acc[0][v], acc_hi[v]);
    }
    __m512 ws[4];
    for (int v = 0; v < 4; ++v) ws[v] = _mm512_loadu_ps(sb + g * kVnniRows + 16 * v);
    for (int t = 0; t < Tile; ++t) {
      const __m512 xs = _mm512_set1_ps(x.scales[(m0 + t) * groups + g]);
      for (int v = 0; v < 4; ++v) {
        out[t][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][v]), _mm512_mul_ps(ws[v], xs), out[t][v]);
      }
    }
  }
  for (int v = 0; v < 4; ++v) {
    const int64_t row = block * kVnniRows + 16 * v;
    if (row >= w.n) break;
    const __mmask16 mask = Tail16(std::min<int64_t>(16, w.n - row));
    for (int t = 0; t < Tile; ++t) _mm512_mask_storeu_ps(y + (m0 + t) * y_stride + row, mask, out[t][v]);
  }
}

// The most tokens one VnniBlockTile takes: 16 accumulators. Measured against 6 and 8
// (kernels_bench, 2 threads), 4 was fastest from one token to 512.
constexpr int kVnniTile = 4;

// Tokens m0 .. m0 + count (count < Tile) of one block.
template <int Tile, bool Int4>
void VnniBlockRemainder(const QuantizedActivations& x, const VnniWeight& w, int64_t block, int64_t m0, int64_t count,
                        float* y, int64_t y_stride) {
  if constexpr (Tile > 1) {
    if (count == Tile - 1) return VnniBlockTile<Tile - 1, Int4>(x, w, block, m0, y, y_stride);
    VnniBlockRemainder<Tile - 1, Int4>(x, w, block, m0, count, y, y_stride);
  }
}

template <bool Int4>
void VnniBlocks(const QuantizedActivations& x, const VnniWeight& w, int64_t block_begin, int64_t block_end, float* y,
                int64_t y_stride) {
  for (int64_t b = block_begin; b < block_end; ++b) {
    int64_t m0 = 0;
    for (; m0 + kVnniTile <= x.tokens; m0 += kVnniTile) VnniBlockTile<kVnniTile, Int4>(x, w, b, m0, y, y_stride);
    VnniBlockRemainder<kVnniTile, Int4>(x, w, b, m0, x.tokens - m0, y, y_stride);
  }
}

}  // namespace

void VnniRowBlocks(const QuantizedActivations& x, const VnniWeight& w, int64_t block_begin, int64_t block_end,
                   float* y, int64_t y_stride) {
  if (w.int4) return VnniBlocks<true>(x, w, block_begin, block_end, y, y_stride);
  VnniBlocks<false>(x, w, block_begin, block_end, y, y_stride);
}

}  // namespace dsrt::backends::onednn::avx512
