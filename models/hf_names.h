#ifndef DSRT_MODELS_HF_NAMES_H_
#define DSRT_MODELS_HF_NAMES_H_

// The Hugging Face tensor names of the DeepSeek architecture (deepseek_v2 and
// deepseek_v3), in one table. synth writes from it, the builder reads by it, and
// checkpoint validation checks against it.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "ir/dtype.h"
#include "models/config.h"

namespace dsrt::models {

// Model-level tensors.
inline constexpr absl::string_view kEmbedTokens = "model.embed_tokens.weight";
inline constexpr absl::string_view kFinalNorm = "model.norm.weight";
inline constexpr absl::string_view kLmHead = "lm_head.weight";

// Suffixes of a decoder layer's tensors, under "model.layers.N.".
inline constexpr absl::string_view kInputLayernorm = "input_layernorm.weight";
inline constexpr absl::string_view kPostAttentionLayernorm = "post_attention_layernorm.weight";
inline constexpr absl::string_view kQProj = "self_attn.q_proj.weight";  // q_lora_rank null
inline constexpr absl::string_view kQAProj = "self_attn.q_a_proj.weight";
inline constexpr absl::string_view kQALayernorm = "self_attn.q_a_layernorm.weight";
inline constexpr absl::string_view kQBProj = "self_attn.q_b_proj.weight";
inline constexpr absl::string_view kKvAProjWithMqa = "self_attn.kv_a_proj_with_mqa.weight";
inline constexpr absl::string_view kKvALayernorm = "self_attn.kv_a_layernorm.weight";
inline constexpr absl::string_view kKvBProj = "self_attn.kv_b_proj.weight";
inline constexpr absl::string_view kOProj = "self_attn.o_proj.weight";
inline constexpr absl::string_view kMlpGateProj = "mlp.gate_proj.weight";  // dense layers
inline constexpr absl::string_view kMlpUpProj = "mlp.up_proj.weight";
inline constexpr absl::string_view kMlpDownProj = "mlp.down_proj.weight";
inline constexpr absl::string_view kRouterGate = "mlp.gate.weight";  // MoE layers
inline constexpr absl::string_view kRouterBias = "mlp.gate.e_score_correction_bias";  // noaux_tc only
inline constexpr absl::string_view kSharedGateProj = "mlp.shared_experts.gate_proj.weight";
inline constexpr absl::string_view kSharedUpProj = "mlp.shared_experts.up_proj.weight";
inline constexpr absl::string_view kSharedDownProj = "mlp.shared_experts.down_proj.weight";
// Projections of routed expert E: "mlp.experts.E." + one of these (see ExpertTensor).
inline constexpr absl::string_view kGateProj = "gate_proj.weight";
inline constexpr absl::string_view kUpProj = "up_proj.weight";
inline constexpr absl::string_view kDownProj = "down_proj.weight";
// The MTP layer's extras (layer index num_hidden_layers + k), around a full decoder layer.
inline constexpr absl::string_view kMtpEmbedTokens = "embed_tokens.weight";
inline constexpr absl::string_view kMtpEnorm = "enorm.weight";
inline constexpr absl::string_view kMtpHnorm = "hnorm.weight";
inline constexpr absl::string_view kMtpEhProj = "eh_proj.weight";
inline constexpr absl::string_view kMtpSharedHeadNorm = "shared_head.norm.weight";
inline constexpr absl::string_view kMtpSharedHeadHead = "shared_head.head.weight";

// "model.layers.<layer>.<suffix>".
std::string LayerTensor(int64_t layer, absl::string_view suffix);
// "model.layers.<layer>.mlp.experts.<expert>.<projection>", projection one of kGateProj, kUpProj, kDownProj.
std::string ExpertTensor(int64_t layer, int64_t expert, absl::string_view projection);
// "<weight_name>_scale_inv": the F32 block scales of an FP8 weight.
std::string ScaleInvName(absl::string_view weight_name);
// [ceil(out / block.first), ceil(in / block.second)] for a weight of shape [out, in].
std::vector<int64_t> ScaleInvShape(const std::vector<int64_t>& weight_shape, std::pair<int64_t, int64_t> block);

// What a tensor does in the model; synth initializes by it.
enum class TensorRole {
  kEmbedding,
  kNorm,
  kProjection,          // a linear weight [out, in]
  kResidualProjection,  // a linear weight whose output joins the residual stream (o_proj, down_proj)
  kRouter,              // mlp.gate.weight
  kRouterBias,          // e_score_correction_bias
  kLmHead,
};

// How a tensor is stored in a released checkpoint.
enum class StorageKind {
  kBF16,
  kFP8,  // F8_E4M3 + F32 "<name>_scale_inv" in an FP8 checkpoint (quantization_config), BF16 otherwise
  kF32,
};

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  TensorRole role = TensorRole::kProjection;
  StorageKind storage = StorageKind::kBF16;
  int64_t layer = -1;   // -1 for model-level tensors
  int64_t expert = -1;  // routed expert index, -1 otherwise
  // Released checkpoints store the MTP layer's embed_tokens and shared_head.head as
  // copies of these model-level tensors: the name copied, empty otherwise.
  std::string copy_of;
};

// Every tensor of the model in HF order: embed, the decoder layers, the final norm,
// lm_head (unless tie_word_embeddings), then, with include_mtp, the
// num_nextn_predict_layers MTP layers. No scale_inv tensors (see StoredTensors).
std::vector<TensorSpec> ExpectedTensors(const DeepSeekConfig& config, bool include_mtp);

// A tensor as a checkpoint of `config` stores it.
struct StoredTensor {
  std::string name;
  ir::DType dtype = ir::DType::kBF16;
  std::vector<int64_t> shape;
};

// The dtype of `spec` in a checkpoint of `config`: F8_E4M3 for kFP8 when the config
// has fp8_block_size.
ir::DType StoredDType(const TensorSpec& spec, const DeepSeekConfig& config);
// ExpectedTensors as a checkpoint stores them: each FP8 weight followed by its scale_inv.
std::vector<StoredTensor> StoredTensors(const DeepSeekConfig& config, bool include_mtp);

}  // namespace dsrt::models

#endif  // DSRT_MODELS_HF_NAMES_H_
