#ifndef DSRT_PASSES_MOE_FUSE_H_
#define DSRT_PASSES_MOE_FUSE_H_

#include "passes/pass.h"

namespace dsrt::passes {

// Rewrites the routed experts of each MoE layer into one `FusedMoE` op.
//
// Before (as models/deepseek_builder.cc writes it):
//   ids, wts = Router(x, gate_weight[, bias])
//   for e in 0..E-1:  y_e = Linear(Mul(Silu(Linear(x, gate_e)), Linear(x, up_e)), down_e)
//                     w_e = ExpertWeight(ids, wts) {expert=e}
//   sum = ((y_0 * w_0 + y_1 * w_1) + y_2 * w_2) + ...
// After:
//   ids, wts = Router(...)                          (unchanged: it carries every routing variant)
//   sum = FusedMoE(x, ids, wts, gate_0..gate_{E-1}, up_0.., down_0..) {num_experts=E, top_k=K}
//
// The expert weights stay per-expert Constants (a backend may stack them at load time;
// see passes/README.md). Shared experts are left as the dense MLP they are, added after.
// A layer that differs in any op, operand, shape or use is left as it is.
class MoeFuse : public Pass {
 public:
  std::string name() const override { return "moe-fuse"; }
  absl::StatusOr<bool> Run(ir::Graph& graph) override;
};

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_MOE_FUSE_H_
