#ifndef DSRT_PASSES_QUANTIZE_WEIGHTS_H_
#define DSRT_PASSES_QUANTIZE_WEIGHTS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "passes/pass.h"

namespace dsrt::passes {

// Weight-only quantization, int8 or int4 with one f32 scale per group of `group_size`
// input columns of each output row (passes/weight_recipes.h has the math).
//
// Quantized: the Linears of a decoder layer's attention projections (q_proj, q_a_proj,
// q_b_proj, kv_a_proj_with_mqa, o_proj), of its dense MLP and shared experts
// (gate_proj, up_proj, down_proj), of unfused routed experts, and every FusedMoE's expert
// weights. Left in the activation dtype: the embedding, the norms, the router gate, the
// LM head (the logits are most sensitive to it; a `lm_head_scheme` of int8 or int4
// quantizes an untied lm_head.weight too, as llama.cpp's files do: Q8_0 keeps it in Q8_0,
// Q4_0 in Q6_K) and kv_b_proj (MLAAttention reads W_UK and
// W_UV from it directly in latent form; it is small and per-head). Weights are picked by
// their checkpoint names (model.layers.N.self_attn.q_proj.weight, ...), the one place the
// pass looks at names: which matrix a Linear multiplies by is what decides.
//
// Before:  %y = Linear(%x, %w)            %w = Constant() {weight="...q_proj.weight"} : bf16[O,I]
// After:   %y = QLinear(%x, %w.q, %w.s) {group_size=g}
//          %w.q = Constant() {weight="...q_proj.weight.int8-g128.values", derive="quantize",
//                             source="...q_proj.weight", source_shape=[O,I], scheme="int8",
//                             group_size=g, part="values"} : i8[O,I]
//          %w.s = Constant() {... part="scales"} : f32[O,ceil(I/g)]
// and FusedMoE(x, ids, wts, gate.., up.., down..) → QFusedMoE(x, ids, wts, values.., scales..).
// The engine builder computes the derived weights from their sources when it writes the
// engine; the pass itself never sees weight bytes.
class QuantizeWeights : public Pass {
 public:
  // `lm_head_scheme`: "" leaves the LM head in the activation dtype.
  QuantizeWeights(std::string scheme, int64_t group_size, std::string lm_head_scheme = "")
      : scheme_(std::move(scheme)), group_size_(group_size), lm_head_scheme_(std::move(lm_head_scheme)) {}
  std::string name() const override { return "quantize-weights"; }
  absl::StatusOr<bool> Run(ir::Graph& graph) override;

 private:
  std::string scheme_;
  int64_t group_size_;
  std::string lm_head_scheme_;
};

// "int8" or "int4", and a group size of at least 2 (even for int4); the error names the value.
absl::Status CheckQuantizeOptions(const std::string& scheme, int64_t group_size);

// Whether the pass quantizes the Linear weight named `weight` (a checkpoint name).
bool IsQuantizableLinearWeight(const std::string& weight);

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_QUANTIZE_WEIGHTS_H_
