#include "backends/onednn/cpu_avx512.h"

#include <immintrin.h>

#include <algorithm>
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

// (a & 0x0f) ^ 0x08 per byte: a signed nibble as the unsigned value + 8.
__m512i OffsetNibbles(__m512i a) {
  return _mm512_ternarylogic_epi32(a, _mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x08), 0x6a);
}

// 32 weights of a row as f32 (two vectors): i8 bytes, or i4 nibbles in element order.
void LoadWeights32(const uint8_t* row, bool int4, int64_t j, __m512* first, __m512* second) {
  __m256i bytes;
  if (int4) {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + j / 2)));
    const __m256i nibbles = _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi16(0x000f)),
                                            _mm256_and_si256(_mm256_slli_epi16(v, 4), _mm256_set1_epi16(0x0f00)));
    bytes = _mm256_sub_epi8(_mm256_xor_si256(nibbles, _mm256_set1_epi8(0x08)), _mm256_set1_epi8(0x08));
  } else {
    bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + j));
  }
  *first = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(bytes)));
  *second = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(bytes, 1)));
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

void DequantizeRowsBf16(const void* w, bool int4, const float* w_scales, int64_t k, int64_t group_size,
                        int64_t row_begin, int64_t row_end, uint16_t* out) {
  const int64_t groups = (k + group_size - 1) / group_size;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w) + (int4 ? r * k / 2 : r * k);
    uint16_t* o = out + (r - row_begin) * k;
    for (int64_t j = 0; j < k; j += 32) {
      __m512 a, b;
      LoadWeights32(row, int4, j, &a, &b);
      const __m512 scale = _mm512_set1_ps(w_scales[r * groups + j / group_size]);
      const __m512i both = _mm512_inserti64x4(
          _mm512_castsi256_si512((__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(a, scale))),
          (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(b, scale)), 1);
      _mm512_storeu_si512(o + j, both);
    }
  }
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

// 2 × `half` bytes as their even elements, then their odd ones (half is 64 or 32).
void SplitEvenOdd(const int8_t* src, int64_t half, int8_t* dst) {
  const __m512i low_bytes = _mm512_set1_epi16(0x00ff);
  const __m512i lane_order = _mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0);
  if (half == 64) {
    const __m512i a = _mm512_loadu_si512(src), b = _mm512_loadu_si512(src + 64);
    // packus keeps 128-bit lanes: a's 8 bytes then b's, per lane; the qword permute
    // puts a's before b's.
    const __m512i even = _mm512_packus_epi16(_mm512_and_si512(a, low_bytes), _mm512_and_si512(b, low_bytes));
    const __m512i odd = _mm512_packus_epi16(_mm512_srli_epi16(a, 8), _mm512_srli_epi16(b, 8));
    _mm512_storeu_si512(dst, _mm512_permutexvar_epi64(lane_order, even));
    _mm512_storeu_si512(dst + 64, _mm512_permutexvar_epi64(lane_order, odd));
    return;
  }
  for (int64_t i = 0; i < half; ++i) {
    dst[i] = src[2 * i];
    dst[half + i] = src[2 * i + 1];
  }
}

}  // namespace

void QuantizeActivations(const float* x, int64_t tokens, int64_t k, int64_t group_size, int8_t* values,
                         int8_t* even_odd, float* scales, int32_t* sums) {
  const int64_t groups = (k + group_size - 1) / group_size;
  for (int64_t m = 0; m < tokens; ++m) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = g * group_size, width = std::min(k, begin + group_size) - begin;
      sums[m * groups + g] = QuantizeGroup(x + m * k + begin, width, values + m * k + begin, &scales[m * groups + g]);
    }
    if (even_odd == nullptr) continue;
    for (int64_t base = 0; base < k; base += 128) {
      SplitEvenOdd(values + m * k + base, std::min<int64_t>(64, (k - base) / 2), even_odd + m * k + base);
    }
  }
}

// vpdpbusd multiplies unsigned by signed bytes, so the weight byte is offset to
// unsigned (i8: w + 128, i4: w + 8) and the offset times the activations' group sum
// is taken back once per group.
// The products of the row's and the tokens' group scales, [Tile][groups], and each
// token's correction Σ_g scale_g · offset · sum_g, both vectorized over the groups.
template <int Tile, bool Int4>
void ScaleProducts(const QuantizedActivations& x, const float* row_scales, int64_t groups, int64_t m0, float* s,
                   float* correction) {
  for (int t = 0; t < Tile; ++t) {
    const float* xs = x.scales + (m0 + t) * groups;
    const int32_t* sums = x.sums + (m0 + t) * groups;
    __m512 corr = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g += 16) {
      const __mmask16 m = Tail16(std::min<int64_t>(16, groups - g));
      const __m512 product = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, row_scales + g), _mm512_maskz_loadu_ps(m, xs + g));
      _mm512_mask_storeu_ps(s + t * groups + g, m, product);
      corr = _mm512_fmadd_ps(product, _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, sums + g)), corr);
    }
    correction[t] = (Int4 ? 8.0f : 128.0f) * _mm512_reduce_add_ps(corr);
  }
}

// 64 weight bytes as the unsigned operands of two vpdpbusd: i4, the low and the high
// nibbles (the even and the odd elements of 128); i8, bytes j..j+64 and j+64..j+128.
template <bool Int4>
void LoadOffsetWeights(const uint8_t* row, int64_t j, __m512i* lo, __m512i* hi) {
  if (Int4) {
    const __m512i bytes = _mm512_loadu_si512(row + j / 2);
    *lo = OffsetNibbles(bytes);
    *hi = OffsetNibbles(_mm512_srli_epi16(bytes, 4));
  } else {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    *lo = _mm512_xor_si512(_mm512_loadu_si512(row + j), flip);
    *hi = _mm512_xor_si512(_mm512_loadu_si512(row + j + 64), flip);
  }
}

// The last 64 columns of a row whose width is an odd multiple of 64.
template <bool Int4>
__m512i LoadOffsetWeights64(const uint8_t* row, int64_t j) {
  if (!Int4) return _mm512_xor_si512(_mm512_loadu_si512(row + j), _mm512_set1_epi8(static_cast<char>(0x80)));
  const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + j / 2));
  const __m256i even = _mm256_xor_si256(_mm256_and_si256(bytes, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(0x08));
  const __m256i odd =
      _mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(bytes, 4), _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(0x08));
  return _mm512_inserti64x4(_mm512_castsi256_si512(even), odd, 1);
}

// `Rows` weight rows from r0 times `Tile` tokens from m0. Each weight load serves Tile
// tokens and each activation load Rows rows; the Rows × Tile accumulators are
// independent chains, which one row alone (a chain of vpdpbusd, convert and fma per
// group) cannot keep the vector units busy with. Compile-time counts keep them all in
// registers. `s` is scratch for Rows × Tile × groups scale products.
template <int Tile, int Rows, bool Int4>
void QuantizedRowBlock(const QuantizedActivations& x, const uint8_t* w, const float* w_scales, int64_t k,
                       int64_t group_size, int64_t r0, int64_t row_step, int64_t m0, float* s, float* y,
                       int64_t y_stride) {
  const int64_t groups = (k + group_size - 1) / group_size;
  const int64_t row_bytes = Int4 ? k / 2 : k;
  const int8_t* xs = Int4 ? x.values_even_odd : x.values;
  float correction[Rows][Tile];
  for (int r = 0; r < Rows; ++r) {
    const float* row_scales = w_scales + (r0 + r * row_step) * groups;
    ScaleProducts<Tile, Int4>(x, row_scales, groups, m0, s + r * Tile * groups, correction[r]);
  }
  __m512 accf[Rows][Tile];
  for (int r = 0; r < Rows; ++r) {
    for (int t = 0; t < Tile; ++t) accf[r][t] = _mm512_setzero_ps();
  }
  const uint8_t* wr = w + r0 * row_bytes;
  for (int64_t g = 0; g < groups; ++g) {
    __m512i acc[Rows][Tile];
    for (int r = 0; r < Rows; ++r) {
      for (int t = 0; t < Tile; ++t) acc[r][t] = _mm512_setzero_si512();
    }
    const int64_t group_end = std::min(k, (g + 1) * group_size);
    int64_t j = g * group_size;
    for (; j + 128 <= group_end; j += 128) {
      __m512i lo[Rows], hi[Rows];
      for (int r = 0; r < Rows; ++r) LoadOffsetWeights<Int4>(wr + r * row_step * row_bytes, j, &lo[r], &hi[r]);
      for (int t = 0; t < Tile; ++t) {
        const __m512i x_lo = _mm512_loadu_si512(xs + (m0 + t) * k + j);
        const __m512i x_hi = _mm512_loadu_si512(xs + (m0 + t) * k + j + 64);
        for (int r = 0; r < Rows; ++r) {
          acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], lo[r], x_lo);
          acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], hi[r], x_hi);
        }
      }
    }
    if (j < group_end) {
      __m512i both[Rows];
      for (int r = 0; r < Rows; ++r) both[r] = LoadOffsetWeights64<Int4>(wr + r * row_step * row_bytes, j);
      for (int t = 0; t < Tile; ++t) {
        const __m512i xv = _mm512_loadu_si512(xs + (m0 + t) * k + j);
        for (int r = 0; r < Rows; ++r) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], both[r], xv);
      }
    }
    for (int r = 0; r < Rows; ++r) {
      for (int t = 0; t < Tile; ++t) {
        accf[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][t]), _mm512_set1_ps(s[(r * Tile + t) * groups + g]),
                                     accf[r][t]);
      }
    }
  }
  for (int r = 0; r < Rows; ++r) {
    for (int t = 0; t < Tile; ++t) {
      y[(m0 + t) * y_stride + r0 + r * row_step] = _mm512_reduce_add_ps(accf[r][t]) - correction[r][t];
    }
  }
}

// The most tokens one QuantizedRowBlock takes.
constexpr int kMaxTile = 4;

// Row r for every token, in tiles of up to kMaxTile tokens: the row's weights stay in L1
// across the tiles, so they come from memory once however many tokens there are.
template <bool Int4>
void QuantizedRowAllTokens(const QuantizedActivations& x, const uint8_t* w, const float* w_scales, int64_t k,
                           int64_t group_size, int64_t r, float* s, float* y, int64_t y_stride) {
  int64_t m0 = 0;
  for (; m0 + kMaxTile <= x.tokens; m0 += kMaxTile) {
    QuantizedRowBlock<kMaxTile, 1, Int4>(x, w, w_scales, k, group_size, r, 1, m0, s, y, y_stride);
  }
  switch (x.tokens - m0) {
    case 3:
      QuantizedRowBlock<3, 1, Int4>(x, w, w_scales, k, group_size, r, 1, m0, s, y, y_stride);
      break;
    case 2:
      QuantizedRowBlock<2, 1, Int4>(x, w, w_scales, k, group_size, r, 1, m0, s, y, y_stride);
      break;
    case 1:
      QuantizedRowBlock<1, 1, Int4>(x, w, w_scales, k, group_size, r, 1, m0, s, y, y_stride);
      break;
    default:
      break;
  }
}

// One or two tokens (decode) are bound by reading the weight, and one row at a time is
// bound by its chain of vpdpbusd, convert and fma per group: four rows at a time run
// 1.5x as fast from cache. Four neighbouring rows would be four streams a row long each,
// which the hardware prefetcher does not follow; so the range is cut into four runs of
// consecutive rows and each block takes one row from every run: four long sequential
// streams. More tokens are bound by the dot products; they go a row at a time.
template <bool Int4>
void QuantizedRows(const QuantizedActivations& x, const uint8_t* w, const float* w_scales, int64_t k,
                   int64_t group_size, int64_t row_begin, int64_t row_end, float* y, int64_t y_stride) {
  constexpr int kStreams = 4;
  const int64_t groups = (k + group_size - 1) / group_size;
  thread_local std::vector<float> scale_products;
  scale_products.resize(std::max(kStreams * 2, kMaxTile) * groups);
  float* s = scale_products.data();
  int64_t r = row_begin;
  if (x.tokens <= 2) {
    const int64_t run = (row_end - row_begin) / kStreams;
    for (int64_t i = 0; i < run; ++i) {
      if (x.tokens == 1) {
        QuantizedRowBlock<1, kStreams, Int4>(x, w, w_scales, k, group_size, row_begin + i, run, 0, s, y, y_stride);
      } else {
        QuantizedRowBlock<2, kStreams, Int4>(x, w, w_scales, k, group_size, row_begin + i, run, 0, s, y, y_stride);
      }
    }
    r = row_begin + kStreams * run;
  }
  for (; r < row_end; ++r) QuantizedRowAllTokens<Int4>(x, w, w_scales, k, group_size, r, s, y, y_stride);
}

void QuantizedRowsI8(const QuantizedActivations& x, const int8_t* w, const float* w_scales, int64_t k,
                     int64_t group_size, int64_t row_begin, int64_t row_end, float* y, int64_t y_stride) {
  QuantizedRows<false>(x, reinterpret_cast<const uint8_t*>(w), w_scales, k, group_size, row_begin, row_end, y,
                       y_stride);
}

void QuantizedRowsI4(const QuantizedActivations& x, const uint8_t* w, const float* w_scales, int64_t k,
                     int64_t group_size, int64_t row_begin, int64_t row_end, float* y, int64_t y_stride) {
  QuantizedRows<true>(x, w, w_scales, k, group_size, row_begin, row_end, y, y_stride);
}

}  // namespace dsrt::backends::onednn::avx512
