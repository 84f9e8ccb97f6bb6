#ifndef DSRT_MODELS_DEEPSEEK_BUILDER_H_
#define DSRT_MODELS_DEEPSEEK_BUILDER_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "ir/graph.h"
#include "models/config.h"

namespace dsrt::models {

struct GraphOptions {
  // The dtype of the KV cache and of every weight the engine stores (except
  // e_score_correction_bias, kept in f32 as the checkpoint has it). Activations
  // between ops are f32 in every engine: a bf16 engine halves the bytes of weights
  // and cache, which is what bounds decoding, without rounding the residual stream.
  ir::DType activation = ir::DType::kF32;
};

// The naive DeepSeek graph, written the way the papers and Hugging Face's
// modeling_deepseek.py define the model: MLA with kv_b_proj expanding the latent
// into per-head K and V (cached per head), a router, one MLP per routed expert,
// shared experts, YaRN RoPE. Inputs: Parameters "token_ids" and "positions"
// (i32[tokens]); output: "logits" f32[tokens, vocab]. Constants are named by
// their Hugging Face tensor names.
absl::StatusOr<std::unique_ptr<ir::Graph>> BuildDeepSeekGraph(const DeepSeekConfig& config,
                                                              const GraphOptions& options);

// DeepSeek-V3's multi-token-prediction module `depth` as its own graph: inputs
// "token_ids" (token i+1), "positions" and "hidden" (the main graph's second output,
// the final normed hidden state at position i); output "logits" for token i+2. Its
// attention uses cache slot 0 of its own cache. The main graph has that second
// output only when the config has MTP layers.
absl::StatusOr<std::unique_ptr<ir::Graph>> BuildDeepSeekMtpGraph(const DeepSeekConfig& config,
                                                                 const GraphOptions& options, int64_t depth = 0);

// The dtype a weight is stored in within an engine of `activation` dtype.
ir::DType EngineWeightDType(absl::string_view name, ir::DType activation);

// RoPE frequencies (YaRN-corrected when rope_scaling is set), qk_rope_head_dim / 2 of them,
// rounded to float32 as Hugging Face computes them.
std::vector<double> RopeInvFreq(const DeepSeekConfig& config);
// The multiplier of cos and sin: yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim).
double RopeCosSinScale(const DeepSeekConfig& config);
// (qk_nope + qk_rope)^-0.5, times yarn_mscale(factor, mscale_all_dim)^2 under YaRN.
double AttentionSoftmaxScale(const DeepSeekConfig& config);

}  // namespace dsrt::models

#endif  // DSRT_MODELS_DEEPSEEK_BUILDER_H_
