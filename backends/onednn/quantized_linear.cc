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
  const int64_t groups = (k_ + group_size_ - 1) / group_size_;
  x_values_.resize(m * k_);
  x_scales_.resize(m * groups);
  x_sums_.resize(m * groups);
  if (int4_) x_even_odd_.resize(m * k_);
  QuantizeActivations(x, m, k_, group_size_, x_values_.data(), int4_ ? x_even_odd_.data() : nullptr, x_scales_.data(),
                      x_sums_.data());
  QuantizedActivations qx{x_values_.data(), x_even_odd_.data(), x_scales_.data(), x_sums_.data(), m};
  ParallelFor(n_, k_ * m, [&](int64_t begin, int64_t end) {
    if (int4_) {
      QuantizedRowsI4(qx, static_cast<const uint8_t*>(values_), scales_, k_, group_size_, begin, end, y, n_);
    } else {
      QuantizedRowsI8(qx, static_cast<const int8_t*>(values_), scales_, k_, group_size_, begin, end, y, n_);
    }
  });
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
