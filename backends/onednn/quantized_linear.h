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
  void Resize(int64_t tokens, int64_t k, int64_t group_size, bool int4);
  // Rows [first, first + count) from x [count, k].
  void Quantize(const float* x, int64_t first, int64_t count);
  // Rows `rows` of `from` (same k, group size and int4), in that order; resizes.
  void Gather(const QuantizedInput& from, absl::Span<const int64_t> rows);
  QuantizedActivations view() const;

 private:
  int64_t tokens_ = 0, k_ = 0, group_size_ = 0, groups_ = 0;
  bool int4_ = false;
  std::vector<int8_t> values_, even_odd_;
  std::vector<float> scales_;
  std::vector<int32_t> sums_;
};

// y[m, n] = x[m, k] · (values · scales per group)ᵀ for a weight-only int8/int4
// weight. With a WeightArena the bytes are copied into its huge pages once: streamed
// from the engine's 4 KiB file pages, every page would start the hardware prefetcher
// (and a TLB walk) anew, which measured 3× slower on v2-lite-full's experts. Without
// one they are read in place. A few tokens: activations quantized
// to int8 per group and VNNI dot products (the weight is read once, which is what a
// decode step costs). Many tokens: blocks of rows dequantized to bf16 and multiplied
// by oneDNN, the conversion spread over the tokens.
class QuantizedLinear {
 public:
  static absl::StatusOr<QuantizedLinear> Create(Dnnl& dnnl, const ir::WeightView& values, const ir::WeightView& scales,
                                                int64_t group_size, WeightArena* arena = nullptr);
  // Weights of one width stacked by rows into one (an expert's gate and up: one call,
  // one pass over the activations). Needs an arena.
  struct Part {
    ir::WeightView values, scales;
  };
  static absl::StatusOr<QuantizedLinear> CreateStacked(Dnnl& dnnl, const std::vector<Part>& parts, int64_t group_size,
                                                       WeightArena* arena);
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int64_t group_size() const { return group_size_; }
  bool int4() const { return int4_; }
  void Run(const float* x, int64_t m, float* y);

  // Token counts up to this take the VNNI path. Measured (2 threads, int4): 10944 × 2048
  // at 32 tokens 5.6 ms against 12.1 dequantized, at 64 10.7 against 12.8; one expert's
  // 2816 × 2048 at 64 tokens 2.5 against 5.4 (dequantizing costs the same at any count).
  static constexpr int64_t kMaxVnniTokens = 64;
  // The VNNI path in pieces, for a caller that runs several linears in one parallel
  // region: whether m tokens take it, and rows [begin, end) of y [x.tokens, n] on the
  // calling thread for activations quantized with this k, group size and int4.
  bool TakesVnni(int64_t m) const { return vnni_ok_ && m <= kMaxVnniTokens; }
  void VnniRows(const QuantizedActivations& x, int64_t begin, int64_t end, float* y) const;

 private:
  void RunVnni(const float* x, int64_t m, float* y);
  void RunDequantized(const float* x, int64_t m, float* y);

  std::unique_ptr<StridedMatmuls> matmuls_;
  const void* values_ = nullptr;
  bool int4_ = false;
  const float* scales_ = nullptr;
  int64_t n_ = 0, k_ = 0, group_size_ = 0;
  bool vnni_ok_ = false;  // k and group_size fit the VNNI kernels' blocking
  // Scratch, grown once and kept.
  QuantizedInput x_quantized_;
  std::vector<uint16_t> x_bf16_, w_block_;
  std::vector<float> y_block_;
};

}  // namespace dsrt::backends::onednn

#endif  // DSRT_BACKENDS_ONEDNN_QUANTIZED_LINEAR_H_
