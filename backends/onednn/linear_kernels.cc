// Linear, QLinear and Router: everything that multiplies activations by a weight matrix.

#include <vector>

#include "absl/strings/str_cat.h"
#include "backends/onednn/kernel.h"
#include "backends/onednn/quantized_linear.h"
#include "backends/routing.h"
#include "ir/status_macros.h"

namespace dsrt::backends::onednn {
namespace {

// The rows of x a linear runs on: all of them, or, for the LM head, the logit rows
// the caller asked for (gathered first).
class RowSelection {
 public:
  explicit RowSelection(bool is_logits) : is_logits_(is_logits) {}

  // Returns x or the gathered rows; sets *rows.
  const float* Rows(StepContext& ctx, const float* x, int64_t all_rows, int64_t k, int64_t* rows) {
    *rows = all_rows;
    if (!is_logits_ || ctx.logit_rows().empty()) return x;
    const std::vector<int32_t>& wanted = ctx.logit_rows();
    gathered_.resize(wanted.size() * k);
    for (size_t i = 0; i < wanted.size(); ++i) {
      const int32_t row = std::clamp<int32_t>(wanted[i], 0, static_cast<int32_t>(all_rows - 1));
      std::copy_n(x + row * k, k, gathered_.data() + i * k);
    }
    *rows = static_cast<int64_t>(wanted.size());
    ctx.logits_selected = true;
    return gathered_.data();
  }

 private:
  bool is_logits_;
  std::vector<float> gathered_;
};

absl::Status CheckLogitRows(StepContext& ctx) {
  for (int32_t row : ctx.logit_rows()) {
    if (row < 0 || row >= ctx.tokens()) {
      return absl::OutOfRangeError(absl::StrCat("logit row ", row, " outside the step's ", ctx.tokens(), " tokens"));
    }
  }
  return absl::OkStatus();
}

class LinearKernel : public Kernel {
 public:
  LinearKernel(PackedLinear* linear, bool is_logits, int x, int out)
      : linear_(linear), rows_(is_logits), x_(x), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    DSRT_RETURN_IF_ERROR(CheckLogitRows(ctx));
    int64_t rows;
    const float* x = rows_.Rows(ctx, ctx.F(x_), ctx.Elements(x_) / linear_->k(), linear_->k(), &rows);
    linear_->Run(x, rows, ctx.F(out_));
    return absl::OkStatus();
  }

 private:
  PackedLinear* linear_;
  RowSelection rows_;
  int x_, out_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeLinear(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(PackedLinear * linear, c.Pack(node, {1}));
  return std::make_unique<LinearKernel>(linear, c.IsLogits(node.output()), c.Index(node.input(0)),
                                        c.Index(node.output()));
}

class QLinearKernel : public Kernel {
 public:
  QLinearKernel(QuantizedLinear linear, bool is_logits, int x, int out)
      : linear_(std::move(linear)), rows_(is_logits), x_(x), out_(out) {}
  absl::Status Run(StepContext& ctx) override {
    DSRT_RETURN_IF_ERROR(CheckLogitRows(ctx));
    int64_t rows;
    const float* x = rows_.Rows(ctx, ctx.F(x_), ctx.Elements(x_) / linear_.k(), linear_.k(), &rows);
    linear_.Run(x, rows, ctx.F(out_));
    return absl::OkStatus();
  }

 private:
  QuantizedLinear linear_;
  RowSelection rows_;
  int x_, out_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeQLinear(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(int64_t group_size, node.attrs().GetInt("group_size"));
  DSRT_ASSIGN_OR_RETURN(ir::WeightView values, c.Weight(node, 1));
  DSRT_ASSIGN_OR_RETURN(ir::WeightView scales, c.Weight(node, 2));
  c.Prefault(node, 1);
  c.Prefault(node, 2);
  DSRT_ASSIGN_OR_RETURN(QuantizedLinear linear,
                        QuantizedLinear::Create(c.dnnl(), values, scales, group_size, c.arena()));
  c.Unneeded(node, 1);
  c.Unneeded(node, 2);
  return std::make_unique<QLinearKernel>(std::move(linear), c.IsLogits(node.output()), c.Index(node.input(0)),
                                         c.Index(node.output()));
}

// Expert logits by oneDNN in f32; the selection rule (shared with the reference) in double.
class RouterKernel : public Kernel {
 public:
  RouterKernel(RouterAttrs attrs, PackedLinear* gate, std::vector<float> bias, int x, int ids, int weights)
      : attrs_(std::move(attrs)), gate_(gate), bias_(std::move(bias)), x_(x), ids_(ids), weights_(weights) {}
  absl::Status Run(StepContext& ctx) override {
    const int64_t tokens = ctx.tokens(), experts = gate_->n();
    logits_.resize(tokens * experts);
    gate_->Run(ctx.F(x_), tokens, logits_.data());
    std::vector<double> row(experts);
    for (int64_t t = 0; t < tokens; ++t) {
      std::copy_n(logits_.data() + t * experts, experts, row.begin());
      Route(attrs_, row, bias_.empty() ? nullptr : bias_.data(), ctx.I(ids_) + t * attrs_.top_k,
            ctx.F(weights_) + t * attrs_.top_k);
    }
    return absl::OkStatus();
  }

 private:
  RouterAttrs attrs_;
  PackedLinear* gate_;
  std::vector<float> bias_;
  std::vector<float> logits_;
  int x_, ids_, weights_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeRouter(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(RouterAttrs attrs, ReadRouterAttrs(node));
  DSRT_ASSIGN_OR_RETURN(PackedLinear * gate, c.PackF32(node, 1));
  std::vector<float> bias;
  if (node.num_inputs() > 2) {
    DSRT_ASSIGN_OR_RETURN(bias, c.WeightF32(node, 2));
  }
  return std::make_unique<RouterKernel>(std::move(attrs), gate, std::move(bias), c.Index(node.input(0)),
                                        c.Index(node.output(0)), c.Index(node.output(1)));
}

}  // namespace

void AddLinearKernels(absl::flat_hash_map<std::string, KernelFactory>& f) {
  f["Linear"] = MakeLinear;
  f["QLinear"] = MakeQLinear;
  f["Router"] = MakeRouter;
}

}  // namespace dsrt::backends::onednn
