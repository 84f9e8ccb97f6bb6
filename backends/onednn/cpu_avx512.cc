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

// vpdpbusd multiplies unsigned by signed bytes, so the weight byte is offset to
// unsigned (i8: w + 128, i4: w + 8) and the offset times the activations' group sum
// is taken back once per group. `Tile` tokens share each weight load; a compile-time
// count keeps their accumulators in registers.
// The products of the row's and the tokens' group scales, [Tile][groups], and each
// token's correction Σ_g scale_g · offset · sum_g, both vectorized over the groups.
template <int Tile, bool Int4>
void ScaleProducts(const QuantizedActivations& x, const float* row_scales, int64_t groups, int64_t m0, float* s,
                   float* correction) {
  const __m512 offset = _mm512_set1_ps(Int4 ? 8.0f : 128.0f);
  for (int t = 0; t < Tile; ++t) {
    const float* xs = x.scales + (m0 + t) * groups;
    const int32_t* sums = x.sums + (m0 + t) * groups;
    __m512 corr = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g += 16) {
      const __mmask16 m = Tail16(std::min<int64_t>(16, groups - g));
      const __m512 product = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, row_scales + g), _mm512_maskz_loadu_ps(m, xs + g));
      _mm512_mask_storeu_ps(s + t * groups + g, m, product);
      const __m512 sum = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, sums + g));
      corr = _mm512_fmadd_ps(_mm512_mul_ps(product, offset), sum, corr);
    }
    correction[t] = _mm512_reduce_add_ps(corr);
  }
}

template <int Tile, bool Int4>
void QuantizedRowsTile(const QuantizedActivations& x, const uint8_t* w, const float* w_scales, int64_t k,
                       int64_t group_size, int64_t r, int64_t m0, float* y, int64_t y_stride) {
  const int64_t groups = (k + group_size - 1) / group_size;
  const uint8_t* wr = Int4 ? w + r * k / 2 : w + r * k;
  const int8_t* xs = Int4 ? x.values_even_odd : x.values;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  thread_local std::vector<float> scale_products;
  scale_products.resize(Tile * groups);
  float* s = scale_products.data();
  float correction[Tile];
  ScaleProducts<Tile, Int4>(x, w_scales + r * groups, groups, m0, s, correction);
  __m512 accf[Tile];
  for (int t = 0; t < Tile; ++t) accf[t] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m512i acc[Tile];
    for (int t = 0; t < Tile; ++t) acc[t] = _mm512_setzero_si512();
    const int64_t group_end = std::min(k, (g + 1) * group_size);
    int64_t j = g * group_size;
    for (; j + 128 <= group_end; j += 128) {
      __m512i lo, hi;
      if (Int4) {
        const __m512i bytes = _mm512_loadu_si512(wr + j / 2);
        lo = OffsetNibbles(bytes);
        hi = OffsetNibbles(_mm512_srli_epi16(bytes, 4));
      } else {
        lo = _mm512_xor_si512(_mm512_loadu_si512(wr + j), flip);
        hi = _mm512_xor_si512(_mm512_loadu_si512(wr + j + 64), flip);
      }
      for (int t = 0; t < Tile; ++t) {
        const int8_t* xv = xs + (m0 + t) * k + j;
        acc[t] = _mm512_dpbusd_epi32(acc[t], lo, _mm512_loadu_si512(xv));
        acc[t] = _mm512_dpbusd_epi32(acc[t], hi, _mm512_loadu_si512(xv + 64));
      }
    }
    if (j < group_end) {  // a last 64 of the row
      if (Int4) {
        const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + j / 2));
        const __m256i even = _mm256_xor_si256(_mm256_and_si256(bytes, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(0x08));
        const __m256i odd = _mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(bytes, 4), _mm256_set1_epi8(0x0f)),
                                             _mm256_set1_epi8(0x08));
        const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(even), odd, 1);
        for (int t = 0; t < Tile; ++t) {
          acc[t] = _mm512_dpbusd_epi32(acc[t], both, _mm512_loadu_si512(xs + (m0 + t) * k + j));
        }
      } else {
        const __m512i lo = _mm512_xor_si512(_mm512_loadu_si512(wr + j), flip);
        for (int t = 0; t < Tile; ++t) {
          acc[t] = _mm512_dpbusd_epi32(acc[t], lo, _mm512_loadu_si512(xs + (m0 + t) * k + j));
        }
      }
    }
    for (int t = 0; t < Tile; ++t) {
      accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t]), _mm512_set1_ps(s[t * groups + g]), accf[t]);
    }
  }
  for (int t = 0; t < Tile; ++t) y[(m0 + t) * y_stride + r] = _mm512_reduce_add_ps(accf[t]) - correction[t];
}

template <bool Int4>
void QuantizedRows(const QuantizedActivations& x, const uint8_t* w, const float* w_scales, int64_t k,
                   int64_t group_size, int64_t row_begin, int64_t row_end, float* y, int64_t y_stride) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    int64_t m0 = 0;
    for (; m0 + 4 <= x.tokens; m0 += 4) QuantizedRowsTile<4, Int4>(x, w, w_scales, k, group_size, r, m0, y, y_stride);
    switch (x.tokens - m0) {
      case 3:
        QuantizedRowsTile<3, Int4>(x, w, w_scales, k, group_size, r, m0, y, y_stride);
        break;
      case 2:
        QuantizedRowsTile<2, Int4>(x, w, w_scales, k, group_size, r, m0, y, y_stride);
        break;
      case 1:
        QuantizedRowsTile<1, Int4>(x, w, w_scales, k, group_size, r, m0, y, y_stride);
        break;
      default:
        break;
    }
  }
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
