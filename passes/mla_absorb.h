#ifndef DSRT_PASSES_MLA_ABSORB_H_
#define DSRT_PASSES_MLA_ABSORB_H_

#include <cstdint>

#include "passes/pass.h"

namespace dsrt::passes {

// Rewrites each naive MLA attention block into one `MLAAttention` op in latent form.
//
// Before (as models/deepseek_builder.cc writes it, per layer):
//   kv      = Reshape(Linear(c_kv, kv_b_proj), [T, H, nope + v])
//   k_nope  = Slice(kv, 2, 0, nope)         v = Slice(kv, 2, nope, nope + v)
//   query   = Concat(q_nope, q_pe)           key = Concat(k_nope, Expand(k_pe, [T, H, rope]))
//   attn    = Attention(query, key, v, positions) {cache_slot, scale, cache_dtype}
// After:
//   attn    = MLAAttention(q_nope, q_pe, c_kv, k_pe, kv_b_proj, positions)
//             {cache_slot, scale, cache_dtype, heads, qk_nope_head_dim, v_head_dim}
//
// W_UK is applied to the query and W_UV after attention, both read in place from the
// kv_b_proj weight, so no weight bytes change; the cache row of a layer shrinks from
// H * (nope + rope + v) to kv_lora_rank + qk_rope_head_dim values. Blocks that differ in
// any op, shape, dtype or attribute are left as they are. The replaced nodes are removed
// when nothing else reads them.
class MlaAbsorb : public Pass {
 public:
  std::string name() const override { return "mla-absorb"; }
  absl::StatusOr<bool> Run(ir::Graph& graph) override;
};

// Whether folding W_UV into o_proj (o_proj'[hidden, H*rank] = o_proj[:, h] W_UV[h] per
// head) takes fewer multiply-adds per token than applying W_UV and then o_proj:
//   H*v*rank + hidden*H*v  >  hidden*H*rank.
// False for every DeepSeek model (V2: v 128, rank 512, hidden 5120 — the folded o_proj
// would be 4x larger and cost 3.6x the MACs). MlaAbsorb never folds: folding makes new
// weight bytes, which the engine cannot hold yet (see passes/README.md).
bool FoldingWuvIntoOProjSavesMacs(int64_t hidden, int64_t heads, int64_t v_head_dim, int64_t kv_lora_rank);

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_MLA_ABSORB_H_
