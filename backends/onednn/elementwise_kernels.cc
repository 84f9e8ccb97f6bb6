// The small ops: lookups, norms, RoPE, elementwise math and data movement.

#include <cmath>
#include <cstring>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "backends/onednn/cpu.h"
#include "backends/onednn/kernel.h"
#include "ir/status_macros.h"

namespace dsrt::backends::onednn {
namespace {

class EmbeddingKernel : public Kernel {
 public:
  EmbeddingKernel(ir::WeightView table, int ids, int out) : table_(table), ids_(ids), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    const int64_t vocab = table_.shape[0], hidden = table_.shape[1];
    const int32_t* ids = ctx.I(ids_);
    float* out = ctx.F(out_);
    for (int64_t t = 0; t < ctx.Elements(ids_); ++t) {
      if (ids[t] < 0 || ids[t] >= vocab) {
        return absl::OutOfRangeError(absl::StrCat("token id ", ids[t], " is outside the vocabulary [0, ", vocab, ")"));
      }
      if (table_.dtype == ir::DType::kBF16) {
        Bf16ToF32(static_cast<const uint16_t*>(table_.data) + ids[t] * hidden, out + t * hidden, hidden);
      } else {
        std::memcpy(out + t * hidden, static_cast<const float*>(table_.data) + ids[t] * hidden, hidden * 4);
      }
    }
    return absl::OkStatus();
  }

 private:
  ir::WeightView table_;
  int ids_, out_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeEmbedding(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(ir::WeightView table, c.Weight(node, 0));
  if (table.dtype != ir::DType::kF32 && table.dtype != ir::DType::kBF16) {
    return absl::UnimplementedError("embedding tables must be f32 or bf16");
  }
  return std::make_unique<EmbeddingKernel>(table, c.Index(node.input(1)), c.Index(node.output()));
}

// y = x / rms(x) * w over the last dim; the sum of squares in double, as the reference.
void RmsNormRows(const float* x, const float* w, double eps, int64_t rows, int64_t n, float* y) {
  ParallelFor(rows, n, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * n;
      double sum_sq = 0;
      for (int64_t j = 0; j < n; ++j) sum_sq += static_cast<double>(xr[j]) * xr[j];
      const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / n + eps));
      float* yr = y + r * n;
      for (int64_t j = 0; j < n; ++j) yr[j] = xr[j] * inv_rms * w[j];
    }
  });
}

class RmsNormKernel : public Kernel {
 public:
  RmsNormKernel(std::vector<float> w, double eps, int x, int out) : w_(std::move(w)), eps_(eps), x_(x), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    const int64_t n = w_.size();
    RmsNormRows(ctx.F(x_), w_.data(), eps_, ctx.Elements(x_) / n, n, ctx.F(out_));
    return absl::OkStatus();
  }

 private:
  std::vector<float> w_;
  double eps_;
  int x_, out_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeRmsNorm(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(std::vector<float> w, c.WeightF32(node, 1));
  DSRT_ASSIGN_OR_RETURN(double eps, node.attrs().GetDouble("eps"));
  return std::make_unique<RmsNormKernel>(std::move(w), eps, c.Index(node.input(0)), c.Index(node.output()));
}

// (sum, normed) = (x + residual, RMSNorm(x + residual)): the residual stream and the
// next sublayer's input in one pass over the rows.
class AddRmsNormKernel : public Kernel {
 public:
  AddRmsNormKernel(std::vector<float> w, double eps, bool round_sum, int x, int residual, int sum, int normed)
      : w_(std::move(w)), eps_(eps), round_sum_(round_sum), x_(x), residual_(residual), sum_(sum), normed_(normed) {}
  absl::Status Run(StepContext& ctx) override {
    const int64_t n = ctx.Elements(x_);
    const float *x = ctx.F(x_), *residual = ctx.F(residual_);
    float* sum = ctx.F(sum_);
    for (int64_t e = 0; e < n; ++e) sum[e] = x[e] + residual[e];
    if (round_sum_) {
      for (int64_t e = 0; e < n; ++e) sum[e] = ir::RoundToBF16(sum[e]);
    }
    const int64_t width = w_.size();
    RmsNormRows(sum, w_.data(), eps_, n / width, width, ctx.F(normed_));
    return absl::OkStatus();
  }

 private:
  std::vector<float> w_;
  double eps_;
  bool round_sum_;
  int x_, residual_, sum_, normed_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeAddRmsNorm(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(std::vector<float> w, c.WeightF32(node, 2));
  DSRT_ASSIGN_OR_RETURN(double eps, node.attrs().GetDouble("eps"));
  if (node.input(0)->type() != node.input(1)->type()) return absl::UnimplementedError("AddRMSNorm with broadcast");
  return std::make_unique<AddRmsNormKernel>(std::move(w), eps, node.output(0)->type().dtype == ir::DType::kBF16,
                                            c.Index(node.input(0)), c.Index(node.input(1)), c.Index(node.output(0)),
                                            c.Index(node.output(1)));
}

// Strides of `dims` right-aligned to the broadcast shape `out`, 0 where broadcast.
std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& dims, const std::vector<int64_t>& out) {
  std::vector<int64_t> strides(out.size(), 0);
  int64_t stride = 1;
  for (size_t k = 0; k < dims.size(); ++k) {
    const size_t axis = dims.size() - 1 - k, out_axis = out.size() - 1 - k;
    strides[out_axis] = dims[axis] == 1 ? 0 : stride;
    stride *= dims[axis];
  }
  return strides;
}

// Calls fn(out_index, in_offset) over every element of `out`, `in` broadcast to it.
template <typename Fn>
void ForEachBroadcast(const std::vector<int64_t>& in, const std::vector<int64_t>& out, Fn fn) {
  const std::vector<int64_t> strides = BroadcastStrides(in, out);
  std::vector<int64_t> index(out.size(), 0);
  const int64_t total = std::accumulate(out.begin(), out.end(), int64_t{1}, std::multiplies<>());
  int64_t offset = 0;
  for (int64_t e = 0; e < total; ++e) {
    fn(e, offset);
    for (int64_t k = static_cast<int64_t>(out.size()) - 1; k >= 0; --k) {
      offset += strides[k];
      if (++index[k] < out[k]) break;
      offset -= strides[k] * out[k];
      index[k] = 0;
    }
  }
}

enum class BinaryOp { kAdd, kMul };

class BinaryKernel : public Kernel {
 public:
  BinaryKernel(BinaryOp op, int a, int b, int out) : op_(op), a_(a), b_(b), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    const float *a = ctx.F(a_), *b = ctx.F(b_);
    float* out = ctx.F(out_);
    const std::vector<int64_t> out_dims = ctx.Dims(out_);
    if (ctx.Dims(a_) == out_dims && ctx.Dims(b_) == out_dims) {
      const int64_t n = ctx.Elements(out_);
      if (op_ == BinaryOp::kAdd) {
        for (int64_t e = 0; e < n; ++e) out[e] = a[e] + b[e];
      } else {
        for (int64_t e = 0; e < n; ++e) out[e] = a[e] * b[e];
      }
      return absl::OkStatus();
    }
    // Broadcast: take a's element through its strides, then combine with b's.
    ForEachBroadcast(ctx.Dims(a_), out_dims, [&](int64_t e, int64_t offset) { out[e] = a[offset]; });
    ForEachBroadcast(ctx.Dims(b_), out_dims, [&](int64_t e, int64_t offset) {
      out[e] = op_ == BinaryOp::kAdd ? out[e] + b[offset] : out[e] * b[offset];
    });
    return absl::OkStatus();
  }

 private:
  BinaryOp op_;
  int a_, b_, out_;
};

KernelFactory MakeBinary(BinaryOp op) {
  return [op](const ir::Node& node, CompileContext& c) -> absl::StatusOr<std::unique_ptr<Kernel>> {
    for (int i = 0; i < 2; ++i) {
      if (c.Slot(node.input(i)).constant) return absl::UnimplementedError("elementwise ops on weights");
    }
    return std::make_unique<BinaryKernel>(op, c.Index(node.input(0)), c.Index(node.input(1)), c.Index(node.output()));
  };
}

float SiluF(float x) { return static_cast<float>(x / (1.0 + std::exp(-static_cast<double>(x)))); }

// One input, one output of the same size, element by element.
template <typename Fn>
class UnaryKernel : public Kernel {
 public:
  UnaryKernel(Fn fn, int x, int out) : fn_(fn), x_(x), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    const float* x = ctx.F(x_);
    float* out = ctx.F(out_);
    for (int64_t e = 0; e < ctx.Elements(out_); ++e) out[e] = fn_(x[e]);
    return absl::OkStatus();
  }

 private:
  Fn fn_;
  int x_, out_;
};

template <typename Fn>
KernelFactory MakeUnary(Fn fn) {
  return [fn](const ir::Node& node, CompileContext& c) -> absl::StatusOr<std::unique_ptr<Kernel>> {
    if (c.Slot(node.input(0)).constant) return absl::UnimplementedError("elementwise ops on weights");
    if (node.input(0)->type().dtype == ir::DType::kI32 || node.output()->type().dtype == ir::DType::kI32) {
      return absl::UnimplementedError("elementwise ops on integers");
    }
    return std::make_unique<UnaryKernel<Fn>>(fn, c.Index(node.input(0)), c.Index(node.output()));
  };
}

// silu(gate) * up, silu rounded to the output's dtype first as the unfused graph does.
class SwiGluKernel : public Kernel {
 public:
  SwiGluKernel(bool bf16, int gate, int up, int out) : bf16_(bf16), gate_(gate), up_(up), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    const float *gate = ctx.F(gate_), *up = ctx.F(up_);
    float* out = ctx.F(out_);
    SiluMul(gate, up, ctx.Elements(out_), bf16_, out);
    return absl::OkStatus();
  }

 private:
  bool bf16_;
  int gate_, up_, out_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeSwiGlu(const ir::Node& node, CompileContext& c) {
  if (node.input(0)->type() != node.input(1)->type()) return absl::UnimplementedError("SwiGLU with broadcast");
  return std::make_unique<SwiGluKernel>(node.output()->type().dtype == ir::DType::kBF16, c.Index(node.input(0)),
                                        c.Index(node.input(1)), c.Index(node.output()));
}

// Reshape (the same elements under another shape: a copy, since every value owns its
// buffer) and Expand (broadcast to a larger shape).
class MoveKernel : public Kernel {
 public:
  MoveKernel(bool broadcast, int x, int out) : broadcast_(broadcast), x_(x), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    const float* x = ctx.F(x_);
    float* out = ctx.F(out_);
    if (!broadcast_) {
      std::memcpy(out, x, ctx.Elements(out_) * 4);
      return absl::OkStatus();
    }
    ForEachBroadcast(ctx.Dims(x_), ctx.Dims(out_), [&](int64_t e, int64_t offset) { out[e] = x[offset]; });
    return absl::OkStatus();
  }

 private:
  bool broadcast_;
  int x_, out_;
};

KernelFactory MakeMove(bool broadcast) {
  return [broadcast](const ir::Node& node, CompileContext& c) -> absl::StatusOr<std::unique_ptr<Kernel>> {
    if (c.Slot(node.input(0)).constant) return absl::UnimplementedError(absl::StrCat(node.op(), " of a weight"));
    return std::make_unique<MoveKernel>(broadcast, c.Index(node.input(0)), c.Index(node.output()));
  };
}

// Copies `width` contiguous elements from each of `outer` rows: Slice and Concat.
void CopyBlocks(const uint8_t* src, int64_t src_stride, uint8_t* dst, int64_t dst_stride, int64_t outer,
                int64_t width) {
  for (int64_t o = 0; o < outer; ++o) std::memcpy(dst + o * dst_stride, src + o * src_stride, width);
}

int64_t Axis(const ir::Node& node, size_t rank) {
  int64_t axis = node.attrs().IntOr("axis", 0);
  return axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
}

// [outer, axis, inner] around `axis`: returns outer, sets *inner.
int64_t OuterInner(const std::vector<int64_t>& dims, int64_t axis, int64_t* inner) {
  *inner = std::accumulate(dims.begin() + axis + 1, dims.end(), int64_t{1}, std::multiplies<>());
  return std::accumulate(dims.begin(), dims.begin() + axis, int64_t{1}, std::multiplies<>());
}

class SliceKernel : public Kernel {
 public:
  SliceKernel(int64_t axis, int64_t start, int x, int out) : axis_(axis), start_(start), x_(x), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    const std::vector<int64_t> in = ctx.Dims(x_), out = ctx.Dims(out_);
    int64_t inner;
    const int64_t outer = OuterInner(in, axis_, &inner);
    const auto* src = reinterpret_cast<const uint8_t*>(ctx.F(x_)) + start_ * inner * 4;
    CopyBlocks(src, in[axis_] * inner * 4, reinterpret_cast<uint8_t*>(ctx.F(out_)), out[axis_] * inner * 4, outer,
               out[axis_] * inner * 4);
    return absl::OkStatus();
  }

 private:
  int64_t axis_, start_;
  int x_, out_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeSlice(const ir::Node& node, CompileContext& c) {
  if (c.Slot(node.input(0)).constant) return absl::UnimplementedError("slicing a weight at run time");
  return std::make_unique<SliceKernel>(Axis(node, node.input(0)->type().dims.size()),
                                       node.attrs().IntOr("start", 0), c.Index(node.input(0)), c.Index(node.output()));
}

class ConcatKernel : public Kernel {
 public:
  ConcatKernel(int64_t axis, std::vector<int> inputs, int out) : axis_(axis), inputs_(std::move(inputs)), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    const std::vector<int64_t> out = ctx.Dims(out_);
    int64_t inner;
    const int64_t outer = OuterInner(out, axis_, &inner);
    auto* dst = reinterpret_cast<uint8_t*>(ctx.F(out_));
    for (int input : inputs_) {
      const int64_t width = ctx.Dims(input)[axis_] * inner * 4;
      CopyBlocks(reinterpret_cast<const uint8_t*>(ctx.F(input)), width, dst, out[axis_] * inner * 4, outer, width);
      dst += width;
    }
    return absl::OkStatus();
  }

 private:
  int64_t axis_;
  std::vector<int> inputs_;
  int out_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeConcat(const ir::Node& node, CompileContext& c) {
  std::vector<int> inputs;
  for (const ir::Value* v : node.inputs()) {
    if (c.Slot(v).constant) return absl::UnimplementedError("concatenating weights at run time");
    inputs.push_back(c.Index(v));
  }
  return std::make_unique<ConcatKernel>(Axis(node, node.output()->type().dims.size()), std::move(inputs),
                                        c.Index(node.output()));
}

class RopeKernel : public Kernel {
 public:
  RopeKernel(std::vector<float> inv_freq, double scale, int x, int positions, int out)
      : inv_freq_(std::move(inv_freq)), scale_(scale), x_(x), positions_(positions), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    const int64_t tokens = ctx.tokens(), dim = 2 * inv_freq_.size();
    const int64_t rows_per_token = ctx.Elements(x_) / (tokens * dim);
    RotateInterleaved(ctx.F(x_), ctx.I(positions_), tokens, rows_per_token, inv_freq_, scale_, ctx.F(out_));
    return absl::OkStatus();
  }

 private:
  std::vector<float> inv_freq_;
  double scale_;
  int x_, positions_, out_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeRope(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(std::vector<double> inv_freq, node.attrs().GetDoubles("inv_freq"));
  return std::make_unique<RopeKernel>(std::vector<float>(inv_freq.begin(), inv_freq.end()),
                                      node.attrs().DoubleOr("scale", 1.0), c.Index(node.input(0)),
                                      c.Index(node.input(1)), c.Index(node.output()));
}

class ExpertWeightKernel : public Kernel {
 public:
  ExpertWeightKernel(int64_t expert, int ids, int weights, int out)
      : expert_(expert), ids_(ids), weights_(weights), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    const int64_t top_k = ctx.Dims(ids_)[1];
    const int32_t* ids = ctx.I(ids_);
    const float* weights = ctx.F(weights_);
    float* out = ctx.F(out_);
    for (int64_t t = 0; t < ctx.tokens(); ++t) {
      out[t] = 0;
      for (int64_t k = 0; k < top_k; ++k) {
        if (ids[t * top_k + k] == expert_) out[t] += weights[t * top_k + k];
      }
    }
    return absl::OkStatus();
  }

 private:
  int64_t expert_;
  int ids_, weights_, out_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeExpertWeight(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(int64_t expert, node.attrs().GetInt("expert"));
  return std::make_unique<ExpertWeightKernel>(expert, c.Index(node.input(0)), c.Index(node.input(1)),
                                              c.Index(node.output()));
}

}  // namespace

void AddElementwiseKernels(absl::flat_hash_map<std::string, KernelFactory>& f) {
  f["Embedding"] = MakeEmbedding;
  f["RMSNorm"] = MakeRmsNorm;
  f["Add"] = MakeBinary(BinaryOp::kAdd);
  f["Mul"] = MakeBinary(BinaryOp::kMul);
  f["Silu"] = MakeUnary(SiluF);
  f["SwiGLU"] = MakeSwiGlu;
  f["AddRMSNorm"] = MakeAddRmsNorm;
  f["Cast"] = MakeUnary([](float x) { return x; });
  f["Reshape"] = MakeMove(/*broadcast=*/false);
  f["Expand"] = MakeMove(/*broadcast=*/true);
  f["Slice"] = MakeSlice;
  f["Concat"] = MakeConcat;
  f["Rope"] = MakeRope;
  f["ExpertWeight"] = MakeExpertWeight;
}

}  // namespace dsrt::backends::onednn
