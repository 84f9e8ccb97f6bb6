#ifndef DSRT_MODELS_CONFIG_H_
#define DSRT_MODELS_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dsrt::models {

enum class ScoringFunc { kSoftmax, kSigmoid };
enum class TopkMethod { kGreedy, kGroupLimitedGreedy, kNoauxTc };

struct RopeScaling {
  std::string type;  // "yarn"
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;  // 0 when absent
};

// A DeepSeek Hugging Face config.json (`deepseek_v2` or `deepseek_v3`), with the
// defaults of Hugging Face's DeepseekV2Config / DeepseekV3Config for absent keys.
struct DeepSeekConfig {
  std::string model_type;  // "deepseek_v2" | "deepseek_v3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t moe_intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t n_shared_experts = 0;  // null → 0
  int64_t n_routed_experts = 0;  // null → 0 (no MoE layers)
  double routed_scaling_factor = 1.0;
  int64_t kv_lora_rank = 0;
  std::optional<int64_t> q_lora_rank;  // null → plain q_proj
  int64_t qk_rope_head_dim = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t v_head_dim = 0;
  TopkMethod topk_method = TopkMethod::kGreedy;  // "gready" (HF's V2 default spelling) means greedy
  int64_t n_group = 1;
  int64_t topk_group = 1;
  int64_t num_experts_per_tok = 0;
  int64_t moe_layer_freq = 1;
  int64_t first_k_dense_replace = 0;
  bool norm_topk_prob = false;
  ScoringFunc scoring_func = ScoringFunc::kSoftmax;
  std::string hidden_act = "silu";
  int64_t max_position_embeddings = 2048;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;  // null → plain RoPE
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;
  int64_t num_nextn_predict_layers = 0;
  std::string torch_dtype = "bfloat16";
  // Present in FP8 V3 checkpoints: quantization_config.weight_block_size.
  std::optional<std::pair<int64_t, int64_t>> fp8_block_size;

  // HF's rule: an MoE at layer i iff n_routed_experts is set, i >= first_k_dense_replace
  // and i % moe_layer_freq == 0.
  bool IsMoeLayer(int64_t layer) const;
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // HF: the shared experts are one MLP of moe_intermediate_size × n_shared_experts.
  int64_t shared_experts_intermediate_size() const { return moe_intermediate_size * n_shared_experts; }
};

// Parses config.json text; `source` names the file in error messages. Rejects an
// unknown model_type, missing required keys, wrong value types, and inconsistent
// values (e.g. n_group not dividing n_routed_experts, an odd qk_rope_head_dim, an
// unsupported hidden_act or scoring_func) with a message naming the key.
absl::StatusOr<DeepSeekConfig> ParseDeepSeekConfig(absl::string_view json_text, absl::string_view source);
absl::StatusOr<DeepSeekConfig> LoadDeepSeekConfig(const std::string& checkpoint_dir);

}  // namespace dsrt::models

#endif  // DSRT_MODELS_CONFIG_H_
