#include "backends/onednn/quantized_linear.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "backends/onednn/cpu.h"
#include "backends/onednn/kernel.h"

namespace dsrt::backends::onednn {
namespace {

// Rows dequantized per oneDNN call on the plain many-token path.
constexpr int64_t kRowBlock = 256;

}  // namespace

void QuantizedInput::Resize(int64_t tokens, int64_t k, int64_t group_size) {
  tokens_ = tokens;
  k_ = k;
  group_size_ = group_size;
  groups_ = (k + group_size - 1) / group_size;
  values_.resize(tokens * k);
  scales_.resize(tokens * groups_);
  sums_.resize(tokens * groups_);
}

void QuantizedInput::Quantize(const float* x, int64_t first, int64_t count) {
  QuantizeActivations(x, count, k_, group_size_, values_.data() + first * k_, scales_.data() + first * groups_,
                      sums_.data() + first * groups_);
}

void QuantizedInput::Gather(const QuantizedInput& from, absl::Span<const int64_t> rows) {
  Resize(static_cast<int64_t>(rows.size()), from.k_, from.group_size_);
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t row = rows[i];
    std::memcpy(values_.data() + i * k_, from.values_.data() + row * k_, k_);
    std::memcpy(scales_.data() + i * groups_, from.scales_.data() + row * groups_, groups_ * sizeof(float));
    std::memcpy(sums_.data() + i * groups_, from.sums_.data() + row * groups_, groups_ * sizeof(int32_t));
  }
}

QuantizedActivations QuantizedInput::view() const { return {values_.data(), scales_.data(), sums_.data(), tokens_}; }

absl::StatusOr<QuantizedLinear> QuantizedLinear::Create(Dnnl& dnnl, const ir::WeightView& values,
                                                        const ir::WeightView& scales, int64_t group_size,
                                                        WeightArena& arena) {
  return CreateStacked(dnnl, {{values, scales}}, group_size, arena);
}

absl::StatusOr<QuantizedLinear> QuantizedLinear::CreateStacked(Dnnl& dnnl, const std::vector<Part>& parts,
                                                               int64_t group_size, WeightArena& arena) {
  if (parts.empty() || group_size < 1) return absl::InvalidArgumentError("no quantized weight to stack");
  const bool int4 = parts[0].values.dtype == ir::DType::kI4;
  const int64_t k = parts[0].values.shape.size() == 2 ? parts[0].values.shape[1] : 0;
  if (!VnniPackable(k, group_size, int4)) {
    return absl::InvalidArgumentError(absl::StrCat("a quantized weight ", k, " wide in groups of ", group_size,
                                                   ": the onednn backend takes ", int4 ? 8 : 4,
                                                   " columns at a time, so both must be multiples of that (build "
                                                   "with another group size, or run on the reference backend)"));
  }
  int64_t n = 0;
  std::vector<QuantizedRowsSource> sources;
  const int64_t groups = (k + group_size - 1) / group_size;
  for (const auto& part : parts) {
    if (part.values.dtype != ir::DType::kI8 && part.values.dtype != ir::DType::kI4) {
      return absl::InvalidArgumentError("quantized values must be i8 or i4");
    }
    if (part.scales.dtype != ir::DType::kF32 || part.values.shape.size() != 2 || part.values.shape[1] != k ||
        (part.values.dtype == ir::DType::kI4) != int4) {
      return absl::InvalidArgumentError("quantized weights need 2-D values of one width and dtype, f32 scales");
    }
    const int64_t rows = part.values.shape[0];
    const int64_t value_bytes = int4 ? rows * k / 2 : rows * k;
    if (part.values.bytes < value_bytes || part.scales.bytes < rows * groups * static_cast<int64_t>(sizeof(float))) {
      return absl::InvalidArgumentError("quantized weight holds fewer bytes than its shape needs");
    }
    sources.push_back({part.values.data, static_cast<const float*>(part.scales.data), rows});
    n += rows;
  }
  QuantizedLinear q;
  q.matmuls_ = std::make_unique<StridedMatmuls>(dnnl);
  q.weight_ = {nullptr, nullptr, n, k, group_size, int4};
  q.weight_.values = static_cast<const uint8_t*>(arena.Allocate(VnniValueBytes(n, k, int4)));
  q.weight_.scales =
      static_cast<const float*>(arena.Allocate(VnniScaleCount(n, k, group_size) * static_cast<int64_t>(sizeof(float))));
  if (q.weight_.values == nullptr || q.weight_.scales == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("out of memory packing a quantized weight [", n, ", ", k, "]"));
  }
  ParallelFor(q.weight_.blocks(), kVnniRows * k, [&](int64_t begin, int64_t end) {
    PackVnniBlocks(sources, q.weight_, begin, end);
  });
  return q;
}

bool QuantizedLinear::TakesVnni(int64_t m) { return UsingAvx512() || m <= kMaxPlainTokens; }

void QuantizedLinear::Run(const float* x, int64_t m, float* y) {
  if (TakesVnni(m)) return RunVnni(x, m, y);
  RunDequantized(x, m, y);
}

void QuantizedLinear::RunVnni(const float* x, int64_t m, float* y) {
  x_quantized_.Resize(m, k(), group_size());
  x_quantized_.Quantize(x, 0, m);
  const QuantizedActivations qx = x_quantized_.view();
  ParallelFor(row_blocks(), kVnniRows * k() * m, [&](int64_t begin, int64_t end) { VnniRowBlocks(qx, begin, end, y); });
}

void QuantizedLinear::VnniRowBlocks(const QuantizedActivations& x, int64_t begin, int64_t end, float* y) const {
  onednn::VnniRowBlocks(x, weight_, begin, end, y, n());
}

void QuantizedLinear::RunDequantized(const float* x, int64_t m, float* y) {
  const int64_t k = this->k(), n = this->n();
  x_bf16_.resize(m * k);
  F32ToBf16(x, x_bf16_.data(), m * k);
  w_rows_.resize(kRowBlock * k);
  w_block_.resize(kRowBlock * k);
  for (int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, n - r0);
    ParallelFor(rows, k, [&](int64_t begin, int64_t end) {
      DequantizeVnniRows(weight_, r0 + begin, r0 + end, w_rows_.data() + begin * k);
      F32ToBf16(w_rows_.data() + begin * k, w_block_.data() + begin * k, (end - begin) * k);
    });
    // y[:, r0:r0+rows] = x · W_blockᵀ, written in place through the destination's row stride.
    matmuls_->Run({{m, k}, {k, 1}, ir::DType::kBF16}, x_bf16_.data(), {{k, rows}, {1, k}, ir::DType::kBF16},
                  w_block_.data(), {{m, rows}, {n, 1}, ir::DType::kF32}, y + r0);
  }
}

}  // namespace dsrt::backends::onednn
