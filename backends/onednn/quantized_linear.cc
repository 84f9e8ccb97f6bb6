#include "backends/onednn/quantized_linear.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "backends/onednn/cpu.h"
#include "backends/onednn/kernel.h"
#include "ir/status_macros.h"

namespace dsrt::backends::onednn {
namespace {

// Rows dequantized per oneDNN call on the many-token path.
constexpr int64_t kRowBlock = 256;

// The bytes of `parts` one after another: copied into `arena`, or the one part itself
// in place when there is no arena.
absl::StatusOr<const void*> Place(const std::vector<std::pair<const void*, int64_t>>& parts, WeightArena* arena) {
  if (arena == nullptr) {
    if (parts.size() != 1) return absl::InvalidArgumentError("stacking quantized weights needs an arena");
    return parts[0].first;
  }
  int64_t total = 0;
  for (const auto& part : parts) total += part.second;
  auto* copy = static_cast<uint8_t*>(arena->Allocate(total));
  if (copy == nullptr) return absl::ResourceExhaustedError("out of memory copying a quantized weight");
  for (const auto& [data, bytes] : parts) {
    std::memcpy(copy, data, bytes);
    copy += bytes;
  }
  return static_cast<const void*>(copy - total);
}

}  // namespace

void QuantizedInput::Resize(int64_t tokens, int64_t k, int64_t group_size, bool int4) {
  tokens_ = tokens;
  k_ = k;
  group_size_ = group_size;
  groups_ = (k + group_size - 1) / group_size;
  int4_ = int4;
  values_.resize(tokens * k);
  if (int4) even_odd_.resize(tokens * k);
  scales_.resize(tokens * groups_);
  sums_.resize(tokens * groups_);
}

void QuantizedInput::Quantize(const float* x, int64_t first, int64_t count) {
  QuantizeActivations(x, count, k_, group_size_, values_.data() + first * k_,
                      int4_ ? even_odd_.data() + first * k_ : nullptr, scales_.data() + first * groups_,
                      sums_.data() + first * groups_);
}

void QuantizedInput::Gather(const QuantizedInput& from, absl::Span<const int64_t> rows) {
  Resize(static_cast<int64_t>(rows.size()), from.k_, from.group_size_, from.int4_);
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t row = rows[i];
    std::memcpy(values_.data() + i * k_, from.values_.data() + row * k_, k_);
    if (int4_) std::memcpy(even_odd_.data() + i * k_, from.even_odd_.data() + row * k_, k_);
    std::memcpy(scales_.data() + i * groups_, from.scales_.data() + row * groups_, groups_ * sizeof(float));
    std::memcpy(sums_.data() + i * groups_, from.sums_.data() + row * groups_, groups_ * sizeof(int32_t));
  }
}

QuantizedActivations QuantizedInput::view() const {
  return {values_.data(), int4_ ? even_odd_.data() : nullptr, scales_.data(), sums_.data(), tokens_};
}

absl::StatusOr<QuantizedLinear> QuantizedLinear::Create(Dnnl& dnnl, const ir::WeightView& values,
                                                        const ir::WeightView& scales, int64_t group_size,
                                                        WeightArena* arena) {
  return CreateStacked(dnnl, {{values, scales}}, group_size, arena);
}

absl::StatusOr<QuantizedLinear> QuantizedLinear::CreateStacked(Dnnl& dnnl, const std::vector<Part>& parts,
                                                               int64_t group_size, WeightArena* arena) {
  if (parts.empty() || group_size < 1) return absl::InvalidArgumentError("no quantized weight to stack");
  QuantizedLinear q;
  q.int4_ = parts[0].values.dtype == ir::DType::kI4;
  q.k_ = parts[0].values.shape.size() == 2 ? parts[0].values.shape[1] : 0;
  std::vector<std::pair<const void*, int64_t>> value_parts, scale_parts;
  for (const auto& [values, scales] : parts) {
    if (values.dtype != ir::DType::kI8 && values.dtype != ir::DType::kI4) {
      return absl::InvalidArgumentError("quantized values must be i8 or i4");
    }
    if (scales.dtype != ir::DType::kF32 || values.shape.size() != 2 || values.shape[1] != q.k_ ||
        (values.dtype == ir::DType::kI4) != q.int4_ || (q.int4_ && q.k_ % 2 != 0 && parts.size() > 1)) {
      return absl::InvalidArgumentError("quantized weights need 2-D values of one width and dtype, f32 scales");
    }
    const int64_t rows = values.shape[0];
    const int64_t value_bytes = q.int4_ ? (rows * q.k_ + 1) / 2 : rows * q.k_;
    const int64_t scale_bytes = rows * ((q.k_ + group_size - 1) / group_size) * static_cast<int64_t>(sizeof(float));
    if (values.bytes < value_bytes || scales.bytes < scale_bytes) {
      return absl::InvalidArgumentError("quantized weight holds fewer bytes than its shape needs");
    }
    value_parts.push_back({values.data, value_bytes});
    scale_parts.push_back({scales.data, scale_bytes});
    q.n_ += rows;
  }
  q.matmuls_ = std::make_unique<StridedMatmuls>(dnnl);
  DSRT_ASSIGN_OR_RETURN(q.values_, Place(value_parts, arena));
  DSRT_ASSIGN_OR_RETURN(const void* placed_scales, Place(scale_parts, arena));
  q.scales_ = static_cast<const float*>(placed_scales);
  q.group_size_ = group_size;
  // int4's even/odd nibble order pairs 128 columns, so its groups must not split one.
  q.vnni_ok_ = q.k_ % 64 == 0 && group_size % (q.int4_ ? 128 : 64) == 0;
  return q;
}

void QuantizedLinear::Run(const float* x, int64_t m, float* y) {
  if (vnni_ok_ && m <= kMaxVnniTokens) return RunVnni(x, m, y);
  RunDequantized(x, m, y);
}

void QuantizedLinear::RunVnni(const float* x, int64_t m, float* y) {
  x_quantized_.Resize(m, k_, group_size_, int4_);
  x_quantized_.Quantize(x, 0, m);
  const QuantizedActivations qx = x_quantized_.view();
  ParallelFor(n_, k_ * m, [&](int64_t begin, int64_t end) { VnniRows(qx, begin, end, y); });
}

void QuantizedLinear::VnniRows(const QuantizedActivations& x, int64_t begin, int64_t end, float* y) const {
  if (int4_) return QuantizedRowsI4(x, static_cast<const uint8_t*>(values_), scales_, k_, group_size_, begin, end, y, n_);
  QuantizedRowsI8(x, static_cast<const int8_t*>(values_), scales_, k_, group_size_, begin, end, y, n_);
}

void QuantizedLinear::RunDequantized(const float* x, int64_t m, float* y) {
  x_bf16_.resize(m * k_);
  F32ToBf16(x, x_bf16_.data(), m * k_);
  w_block_.resize(kRowBlock * k_);
  y_block_.resize(m * kRowBlock);
  for (int64_t r0 = 0; r0 < n_; r0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, n_ - r0);
    ParallelFor(rows, k_, [&](int64_t begin, int64_t end) {
      DequantizeRowsBf16(values_, int4_, scales_, k_, group_size_, r0 + begin, r0 + end, w_block_.data() + begin * k_);
    });
    // y[:, r0:r0+rows] = x · W_blockᵀ, written in place through the destination's row stride.
    matmuls_->Run({{m, k_}, {k_, 1}, ir::DType::kBF16}, x_bf16_.data(), {{k_, rows}, {1, k_}, ir::DType::kBF16},
                w_block_.data(), {{m, rows}, {n_, 1}, ir::DType::kF32}, y + r0);
  }
}

}  // namespace dsrt::backends::onednn
