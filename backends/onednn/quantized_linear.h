#ifndef DSRT_BACKENDS_ONEDNN_QUANTIZED_LINEAR_H_
#define DSRT_BACKENDS_ONEDNN_QUANTIZED_LINEAR_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "backends/onednn/cpu.h"
#include "backends/onednn/dnnl_matmul.h"
#include "ir/weights.h"

namespace dsrt::backends::onednn {

// Activations quantized for the VNNI kernels (int8 per group), in buffers grown once
// and kept between steps.
class QuantizedInput {
 public:
  // Room for `tokens` rows of width k; their values are set by Quantize or Gather.
  void Resize(int64_t tokens, int64_t k, int64_t group_size);
  // Rows [first, first + count) from x [count, k].
  void Quantize(const float* x, int64_t first, int64_t count);
  // Rows `rows` of `from` (same k and group size), in that order; resizes.
  void Gather(const QuantizedInput& from, absl::Span<const int64_t> rows);
  QuantizedActivations view() const;

 private:
  int64_t tokens_ = 0, k_ = 0, group_size_ = 0, groups_ = 0;
  std::vector<int8_t> values_;
  std::vector<float> scales_;
  std::vector<int32_t> sums_;
};

// y[m, n] = x[m, k] · (values · scales per group)ᵀ for a weight-only int8/int4
// weight, repacked once into huge pages (WeightArena) in the VNNI block layout
// (cpu.h's VnniWeight): one sequential stream a block of 64 rows, where the engine's
// 4 KiB file pages would start the hardware prefetcher (and a TLB walk) anew every page.
// The activations are quantized to int8 per group and multiplied with vpdpbusd, for
// any token count (the weight is read once a step; tokens are taken four at a time
// while a block sits in cache). Without AVX-512 VNNI, many tokens go through blocks of
// rows dequantized to bf16 and oneDNN instead of the plain dot products.
class QuantizedLinear {
 public:
  static absl::StatusOr<QuantizedLinear> Create(Dnnl& dnnl, const ir::WeightView& values, const ir::WeightView& scales,
                                                int64_t group_size, WeightArena& arena);
  // Weights of one width stacked by rows into one (an expert's gate and up: one call,
  // one pass over the activations).
  struct Part {
    ir::WeightView values, scales;
  };
  static absl::StatusOr<QuantizedLinear> CreateStacked(Dnnl& dnnl, const std::vector<Part>& parts, int64_t group_size,
                                                       WeightArena& arena);
  int64_t n() const { return weight_.n; }
  int64_t k() const { return weight_.k; }
  int64_t group_size() const { return weight_.group_size; }
  bool int4() const { return weight_.int4; }
  void Run(const float* x, int64_t m, float* y);

  // Without AVX-512 VNNI, token counts above this are dequantized to bf16 for oneDNN
  // (the plain dot products cost more than the conversion then). With it the VNNI
  // kernel takes every count: 10944 × 2048 int4 at 128 tokens ran 1.0 TOPS and int8 at
  // 512 0.76, as fast as oneDNN's bf16 peak here without converting the weight.
  static constexpr int64_t kMaxPlainTokens = 16;
  // The VNNI path in pieces, for a caller that runs several linears in one parallel
  // region: whether m tokens take it (any weight), and the rows of blocks [begin, end) (of
  // row_blocks()) of y [x.tokens, n] on the calling thread, for activations quantized
  // with this k and group size.
  static bool TakesVnni(int64_t m);
  int64_t row_blocks() const { return weight_.blocks(); }
  void VnniRowBlocks(const QuantizedActivations& x, int64_t begin, int64_t end, float* y) const;

 private:
  void RunVnni(const float* x, int64_t m, float* y);
  void RunDequantized(const float* x, int64_t m, float* y);

  std::unique_ptr<StridedMatmuls> matmuls_;
  VnniWeight weight_;
  // Scratch, grown once and kept.
  QuantizedInput x_quantized_;
  std::vector<float> w_rows_;
  std::vector<uint16_t> x_bf16_, w_block_;
};

}  // namespace dsrt::backends::onednn

#endif  // DSRT_BACKENDS_ONEDNN_QUANTIZED_LINEAR_H_
