#ifndef DSRT_BACKENDS_ONEDNN_CPU_H_
#define DSRT_BACKENDS_ONEDNN_CPU_H_

// Row kernels the oneDNN backend runs around its matmuls. Each has a plain C++
// version and, where the CPU has AVX-512 (with BF16 and VNNI), a vector one; the
// choice is made once, at run time, from CPUID.

#include <cstdint>
#include <vector>

namespace dsrt::backends::onednn {

struct CpuFeatures {
  bool avx512 = false;       // F, BW, VL, DQ
  bool avx512_bf16 = false;  // vcvtneps2bf16, vdpbf16ps
  bool avx512_vnni = false;  // vpdpbusd
};
const CpuFeatures& Cpu();
// Turns the vector kernels off (tests compare both paths; DSRT_NO_AVX512=1 does it too).
void ForcePlainKernels(bool plain);
bool UsingAvx512();

// Interleaved rotary embedding of `rows_per_token` rows of 2 × inv_freq.size() values a
// token: (x[2i], x[2i+1]) rotate by positions[t] · inv_freq[i], cos and sin times `scale`,
// the angle in f32 as Hugging Face and DeepSeek's reference compute it.
void RotateInterleaved(const float* x, const int32_t* positions, int64_t tokens, int64_t rows_per_token,
                       const std::vector<float>& inv_freq, double scale, float* out);

// dst[i] = bf16(src[i]), round to nearest even.
void F32ToBf16(const float* src, uint16_t* dst, int64_t n);
void Bf16ToF32(const uint16_t* src, float* dst, int64_t n);
// out[i] = silu(gate[i]) · up[i], silu(g) = g / (1 + e^-g); with `round_silu_to_bf16`
// silu is rounded to bf16 before the product, as an unfused bf16 graph does. The plain
// version takes e^-g in double (the reference backend's rule); the vector one in f32,
// within a few ulps of it.
void SiluMul(const float* gate, const float* up, int64_t n, bool round_silu_to_bf16, float* out);
// Σ x[i]: reads x at full memory speed (bandwidth measurements).
float SumF32(const float* x, int64_t n);
// Σ a[i] b[i] in f32.
float DotF32(const float* a, const float* b, int64_t n);
// y[i] += a * x[i].
void Axpy(float a, const float* x, float* y, int64_t n);
// y[i] += a * x[i] for a bf16 row x.
void AxpyBf16(float a, const uint16_t* x, float* y, int64_t n);
// Σ a[i] b[i] for a bf16 row b.
float DotBf16(const float* a, const uint16_t* b, int64_t n);

// One bf16 row times a bf16 matrix: y[n] = x[k] · W[k, n], products summed in f32 —
// what a latent-attention head's W_UK and W_UV cost a decoding token. W is packed once
// as pairs along k (vdpbf16ps's operand) in blocks of kGemvBlock columns, zero-padded.
constexpr int64_t kGemvBlock = 128;
int64_t Bf16GemvPackedElements(int64_t k, int64_t n);
// W[i, j] = w[i * k_stride + j * n_stride].
void PackBf16Gemv(const uint16_t* w, int64_t k, int64_t n, int64_t k_stride, int64_t n_stride, uint16_t* packed);
void Bf16Gemv(const uint16_t* x, const uint16_t* packed, int64_t k, int64_t n, float* y);

// Weight-only quantized weights against int8-quantized activations.
struct QuantizedActivations {
  const int8_t* values = nullptr;  // [tokens, k]
  const float* scales = nullptr;   // [tokens, groups]
  const int32_t* sums = nullptr;   // [tokens, groups], each group's bytes summed
  int64_t tokens = 0;
};
// Symmetric per-group int8: scale = max|x| / 127 (the last group may be short).
void QuantizeActivations(const float* x, int64_t tokens, int64_t k, int64_t group_size, int8_t* values,
                         float* scales, int32_t* sums);

// An i8 or i4 weight [n, k] with f32 scales per row and group, packed as vpdpbusd takes
// it: blocks of kVnniRows rows (the last padded with zeros), and in a block, for each
// step of 4 (i8) or 8 (i4) columns, four 64-byte vectors of 16 rows, each row's 4 bytes
// side by side. Bytes are unsigned (vpdpbusd's first operand): i8 w + 128; i4 w + 8 for
// columns c..c+3 in the low nibbles and c+4..c+7 in the high ones. One row block is one
// sequential stream, and one broadcast of 4 activation bytes feeds 16 rows.
// Scales: [block][group][kVnniRows].
constexpr int64_t kVnniRows = 64;
struct VnniWeight {
  const uint8_t* values = nullptr;
  const float* scales = nullptr;
  int64_t n = 0, k = 0, group_size = 0;
  bool int4 = false;

  int64_t blocks() const { return (n + kVnniRows - 1) / kVnniRows; }
  int64_t groups() const { return (k + group_size - 1) / group_size; }
  int64_t block_bytes() const { return kVnniRows * (int4 ? k / 2 : k); }
};
// Whether k and the group size are whole column steps (4 for i8, 8 for i4).
bool VnniPackable(int64_t k, int64_t group_size, bool int4);
int64_t VnniValueBytes(int64_t n, int64_t k, bool int4);
int64_t VnniScaleCount(int64_t n, int64_t k, int64_t group_size);
// Rows of a weight to pack: i8 values [rows, k] or i4 (two a byte, low nibble first,
// rows contiguous) and f32 scales [rows, groups].
struct QuantizedRowsSource {
  const void* values = nullptr;
  const float* scales = nullptr;
  int64_t rows = 0;
};
// Blocks [block_begin, block_end) of `packed` (its values and scales, sized for all
// blocks) from `parts` stacked by rows (an expert's gate then up), without joining them.
void PackVnniBlocks(const std::vector<QuantizedRowsSource>& parts, const VnniWeight& packed, int64_t block_begin,
                    int64_t block_end);
// y[m, r] = Σ_g w_scale[r, g] · x.scales[m, g] · Σ_{j in g} w[r, j] · x.values[m, j]
// for every token m and the rows of blocks [block_begin, block_end) (rows past n are
// not written).
void VnniRowBlocks(const QuantizedActivations& x, const VnniWeight& w, int64_t block_begin, int64_t block_end,
                   float* y, int64_t y_stride);
// Rows [row_begin, row_end) of the weight, values times scales, [rows, k].
void DequantizeVnniRows(const VnniWeight& w, int64_t row_begin, int64_t row_end, float* out);

}  // namespace dsrt::backends::onednn

#endif  // DSRT_BACKENDS_ONEDNN_CPU_H_
