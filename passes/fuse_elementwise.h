#ifndef DSRT_PASSES_FUSE_ELEMENTWISE_H_
#define DSRT_PASSES_FUSE_ELEMENTWISE_H_

#include "passes/pass.h"

namespace dsrt::passes {

// Fuses the elementwise steps around DeepSeek's matmuls into the ops next to them:
//
//   SwiGLU      Mul(Silu(gate), up) (either operand order, gate and up of one type, the
//               Silu read by nothing else)                  -> SwiGLU(gate, up)
//   AddRMSNorm  s = Add(x, residual) (no broadcasting) read by RMSNorm(s, weight) {eps}
//               -> (sum, normed) = AddRMSNorm(x, residual, weight) {eps}; every other
//               reader of s (the next residual add) reads sum. With several RMSNorms of one
//               Add, the first in graph order is fused.
//   RoPE        MLAAttention whose q_pe and k_pe are Rope(q, positions) and Rope(k, positions)
//               with equal attributes and the attention's own positions -> MLAAttention over
//               q and k with attrs rope_inv_freq (the Ropes' inv_freq) and rope_scale (their
//               scale, 1 when absent); the Ropes go when nothing else reads them.
//
// Each fused op's reference kernel rounds where the unfused ops did, so outputs are
// bit-identical. Anything that differs in op, type or wiring is left as it is.
class FuseElementwise : public Pass {
 public:
  std::string name() const override { return "fuse-elementwise"; }
  absl::StatusOr<bool> Run(ir::Graph& graph) override;
};

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_FUSE_ELEMENTWISE_H_
