#include "models/deepseek_builder.h"

#include <cmath>
#include <numbers>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ir/builder.h"
#include "ir/status_macros.h"
#include "models/hf_names.h"

namespace dsrt::models {
namespace {

using ir::Dim;
using ir::DType;
using ir::Value;

double YarnMscale(double factor, double mscale) {
  if (factor <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(factor) + 1.0;
}

// Hugging Face's yarn_find_correction_dim.
double CorrectionDim(double rotations, int64_t dim, double base, int64_t max_positions) {
  return (dim * std::log(max_positions / (rotations * 2 * std::numbers::pi))) / (2 * std::log(base));
}

std::string DTypeString(DType dtype) { return std::string(ir::DTypeName(dtype)); }

// Writes one DeepSeek model into a graph, layer by layer.
class DeepSeekGraphWriter {
 public:
  DeepSeekGraphWriter(const DeepSeekConfig& config, const GraphOptions& options, ir::Graph& graph)
      : c_(config), act_(options.activation), b_(graph) {}

  absl::Status Write() {
    Value* ids = b_.Parameter("token_ids", ir::MakeType(DType::kI32, {Dim::Symbolic(ir::kTokensDim)}));
    positions_ = b_.Parameter("positions", ir::MakeType(DType::kI32, {Dim::Symbolic(ir::kTokensDim)}));
    // Activations are f32 in every engine; `act_` is the dtype of the stored weights
    // and of the KV cache. (A backend may still run a matmul's inputs in bf16.)
    Value* h = b_.Op("Embedding", {Weight(std::string(kEmbedTokens), {c_.vocab_size, c_.hidden_size}), ids},
                     {{"dtype", std::string("f32")}}, "embed");
    for (int64_t layer = 0; layer < c_.num_hidden_layers; ++layer) {
      b_.SetScope(absl::StrCat("layers.", layer));
      h = DecoderLayer(layer, h);
    }
    b_.SetScope("head");
    Value* normed = Norm(h, std::string(kFinalNorm), c_.hidden_size);
    const std::string head = c_.tie_word_embeddings ? std::string(kEmbedTokens) : std::string(kLmHead);
    Value* logits = b_.Linear(normed, Weight(head, {c_.vocab_size, c_.hidden_size}), "logits");
    b_.Output(logits);
    if (c_.num_nextn_predict_layers > 0) b_.Output(normed);  // what the MTP module reads
    return b_.status();
  }

  // The multi-token-prediction module of depth `depth` (layer num_hidden_layers + depth),
  // as vLLM, SGLang and TensorRT-LLM run DeepSeek-V3's: it reads the main model's final
  // normed hidden state at position i and the embedding of token i+1, and predicts i+2.
  absl::Status WriteMtp(int64_t depth) {
    const int64_t layer = c_.num_hidden_layers + depth;
    const int64_t hidden = c_.hidden_size;
    Value* ids = b_.Parameter("token_ids", ir::MakeType(DType::kI32, {Dim::Symbolic(ir::kTokensDim)}));
    positions_ = b_.Parameter("positions", ir::MakeType(DType::kI32, {Dim::Symbolic(ir::kTokensDim)}));
    Value* previous = b_.Parameter("hidden", ir::MakeType(DType::kF32, {Dim::Symbolic(ir::kTokensDim), Dim::Static(hidden)}));
    b_.SetScope(absl::StrCat("layers.", layer));
    Value* embedded = b_.Op("Embedding", {Weight(LayerTensor(layer, kMtpEmbedTokens), {c_.vocab_size, hidden}), ids},
                            {{"dtype", std::string("f32")}}, "embed");
    Value* joined = b_.Op("Concat", {Norm(embedded, LayerTensor(layer, kMtpEnorm), hidden),
                                     Norm(previous, LayerTensor(layer, kMtpHnorm), hidden)},
                          {{"axis", int64_t{1}}}, "eh");
    Value* h = b_.Linear(joined, Weight(LayerTensor(layer, kMtpEhProj), {hidden, 2 * hidden}), "eh_proj");
    h = DecoderLayer(layer, h, /*cache_slot=*/0);
    b_.SetScope(absl::StrCat("layers.", layer, ".shared_head"));
    Value* normed = Norm(h, LayerTensor(layer, kMtpSharedHeadNorm), hidden);
    b_.Output(b_.Linear(normed, Weight(LayerTensor(layer, kMtpSharedHeadHead), {c_.vocab_size, hidden}), "logits"));
    return b_.status();
  }

 private:
  Value* Weight(const std::string& name, const std::vector<int64_t>& shape) {
    if (auto it = weights_.find(name); it != weights_.end()) return it->second;
    Value* w = b_.Constant(name, ir::StaticType(EngineWeightDType(name, act_), shape));
    weights_[name] = w;
    return w;
  }

  Value* Norm(Value* x, const std::string& weight, int64_t dim) {
    return b_.Op("RMSNorm", {x, Weight(weight, {dim})}, {{"eps", c_.rms_norm_eps}});
  }

  Value* DecoderLayer(int64_t layer, Value* h) { return DecoderLayer(layer, h, layer); }

  Value* DecoderLayer(int64_t layer, Value* h, int64_t cache_slot) {
    Value* x = Norm(h, LayerTensor(layer, kInputLayernorm), c_.hidden_size);
    h = b_.Add(h, Attention(layer, x, cache_slot), "attn_residual");
    Value* normed = Norm(h, LayerTensor(layer, kPostAttentionLayernorm), c_.hidden_size);
    Value* mlp = c_.IsMoeLayer(layer) ? Moe(layer, normed) : Mlp(layer, "mlp", c_.intermediate_size, normed);
    return b_.Add(h, mlp, "mlp_residual");
  }

  Value* Rope(Value* x) {
    return b_.Op("Rope", {x, positions_}, {{"inv_freq", RopeInvFreq(c_)}, {"scale", RopeCosSinScale(c_)}});
  }

  Value* Attention(int64_t layer, Value* x, int64_t cache_slot) {
    const int64_t heads = c_.num_attention_heads, nope = c_.qk_nope_head_dim, rope = c_.qk_rope_head_dim;
    const int64_t v_dim = c_.v_head_dim, rank = c_.kv_lora_rank, qk = c_.qk_head_dim();
    auto W = [&](absl::string_view suffix, std::vector<int64_t> shape) {
      return Weight(LayerTensor(layer, suffix), shape);
    };
    Value* q;
    if (c_.q_lora_rank.has_value()) {
      const int64_t q_rank = *c_.q_lora_rank;
      Value* qa = b_.Linear(x, W(kQAProj, {q_rank, c_.hidden_size}), "q_a");
      qa = Norm(qa, LayerTensor(layer, kQALayernorm), q_rank);
      q = b_.Linear(qa, W(kQBProj, {heads * qk, q_rank}), "q");
    } else {
      q = b_.Linear(x, W(kQProj, {heads * qk, c_.hidden_size}), "q");
    }
    q = b_.Reshape(q, {0, heads, qk});
    Value* q_nope = b_.Slice(q, 2, 0, nope, "q_nope");
    Value* q_pe = Rope(b_.Slice(q, 2, nope, qk, "q_pe"));

    Value* kv_a = b_.Linear(x, W(kKvAProjWithMqa, {rank + rope, c_.hidden_size}), "kv_a");
    Value* c_kv = Norm(b_.Slice(kv_a, 1, 0, rank, "c_kv"), LayerTensor(layer, kKvALayernorm), rank);
    Value* k_pe = Rope(b_.Reshape(b_.Slice(kv_a, 1, rank, rank + rope), {0, 1, rope}, "k_pe"));
    Value* kv = b_.Reshape(b_.Linear(c_kv, W(kKvBProj, {heads * (nope + v_dim), rank}), "kv"),
                           {0, heads, nope + v_dim});
    Value* k_nope = b_.Slice(kv, 2, 0, nope, "k_nope");
    Value* v = b_.Slice(kv, 2, nope, nope + v_dim, "v");

    Value* query = b_.Op("Concat", {q_nope, q_pe}, {{"axis", int64_t{2}}}, "query");
    Value* key = b_.Op("Concat", {k_nope, b_.Op("Expand", {k_pe}, {{"shape", std::vector<int64_t>{0, heads, 0}}})},
                       {{"axis", int64_t{2}}}, "key");
    Value* attn = b_.Op("Attention", {query, key, v, positions_},
                        {{"cache_slot", cache_slot}, {"scale", AttentionSoftmaxScale(c_)}, {"cache_dtype", DTypeString(act_)}}, "attn");
    attn = b_.Reshape(attn, {0, heads * v_dim});
    return b_.Linear(attn, W(kOProj, {c_.hidden_size, heads * v_dim}), "attn_out");
  }

  // down(silu(gate(x)) * up(x)); `prefix` is "mlp", "mlp.shared_experts" or "mlp.experts.J".
  Value* Mlp(int64_t layer, const std::string& prefix, int64_t inter, Value* x) {
    auto W = [&](absl::string_view proj, std::vector<int64_t> shape) {
      return Weight(LayerTensor(layer, absl::StrCat(prefix, ".", proj, ".weight")), shape);
    };
    Value* gate = b_.Op("Silu", {b_.Linear(x, W("gate_proj", {inter, c_.hidden_size}))});
    Value* up = b_.Linear(x, W("up_proj", {inter, c_.hidden_size}));
    return b_.Linear(b_.Mul(gate, up), W("down_proj", {c_.hidden_size, inter}), prefix == "mlp" ? "mlp_out" : "");
  }

  ir::AttrMap RouterAttrs() const {
    const bool v3 = c_.model_type == "deepseek_v3";
    // HF V2 renormalizes (top_k > 1) or scales, never both; HF V3 renormalizes, then always scales.
    const bool normalize = c_.norm_topk_prob && c_.num_experts_per_tok > 1;
    const double scaling = v3 || !normalize ? c_.routed_scaling_factor : 1.0;
    std::string method = "greedy";
    if (c_.topk_method == TopkMethod::kGroupLimitedGreedy) method = "group_limited_greedy";
    if (c_.topk_method == TopkMethod::kNoauxTc) method = "noaux_tc";
    const bool grouped = method != "greedy";
    return {{"scoring", std::string(c_.scoring_func == ScoringFunc::kSigmoid ? "sigmoid" : "softmax")},
            {"method", method},
            {"top_k", c_.num_experts_per_tok},
            {"n_group", grouped ? c_.n_group : int64_t{1}},
            {"topk_group", grouped ? c_.topk_group : int64_t{1}},
            {"normalize", int64_t{normalize}},
            {"scaling", scaling}};
  }

  Value* Moe(int64_t layer, Value* x) {
    std::vector<Value*> router_inputs = {x, Weight(LayerTensor(layer, kRouterGate),
                                                   {c_.n_routed_experts, c_.hidden_size})};
    if (c_.topk_method == TopkMethod::kNoauxTc) {
      router_inputs.push_back(Weight(LayerTensor(layer, kRouterBias), {c_.n_routed_experts}));
    }
    std::vector<Value*> routed = b_.MultiOp("Router", router_inputs, RouterAttrs(), {"topk_ids", "topk_weights"});
    if (routed.size() != 2) return nullptr;
    Value* sum = nullptr;
    for (int64_t e = 0; e < c_.n_routed_experts; ++e) {
      Value* y = Mlp(layer, absl::StrCat("mlp.experts.", e), c_.moe_intermediate_size, x);
      Value* weight = b_.Op("ExpertWeight", {routed[0], routed[1]}, {{"expert", e}});
      Value* weighted = b_.Mul(y, weight);
      sum = sum == nullptr ? weighted : b_.Add(sum, weighted);
    }
    if (c_.n_shared_experts > 0) {
      Value* shared = Mlp(layer, "mlp.shared_experts", c_.moe_intermediate_size * c_.n_shared_experts, x);
      sum = b_.Add(sum, shared);
    }
    return sum;
  }

  const DeepSeekConfig& c_;
  DType act_;
  ir::GraphBuilder b_;
  Value* positions_ = nullptr;
  absl::flat_hash_map<std::string, Value*> weights_;
};

}  // namespace

ir::DType EngineWeightDType(absl::string_view name, ir::DType activation) {
  if (absl::EndsWith(name, "e_score_correction_bias")) return DType::kF32;
  return activation;
}

std::vector<double> RopeInvFreq(const DeepSeekConfig& config) {
  const int64_t dim = config.qk_rope_head_dim;
  const double base = config.rope_theta;
  std::vector<double> inv_freq(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) {
    inv_freq[i] = static_cast<float>(1.0 / std::pow(base, static_cast<double>(2 * i) / dim));
  }
  if (!config.rope_scaling.has_value()) return inv_freq;
  const RopeScaling& s = *config.rope_scaling;
  double low = std::floor(CorrectionDim(s.beta_fast, dim, base, s.original_max_position_embeddings));
  double high = std::ceil(CorrectionDim(s.beta_slow, dim, base, s.original_max_position_embeddings));
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < dim / 2; ++i) {
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1.0 - ramp;  // HF's inv_freq_mask
    const double interpolated = inv_freq[i] / s.factor;
    inv_freq[i] = static_cast<float>(interpolated * (1.0 - extrapolation_weight) + inv_freq[i] * extrapolation_weight);
  }
  return inv_freq;
}

double RopeCosSinScale(const DeepSeekConfig& config) {
  if (!config.rope_scaling.has_value()) return 1.0;
  const RopeScaling& s = *config.rope_scaling;
  return YarnMscale(s.factor, s.mscale) / YarnMscale(s.factor, s.mscale_all_dim);
}

double AttentionSoftmaxScale(const DeepSeekConfig& config) {
  double scale = 1.0 / std::sqrt(static_cast<double>(config.qk_head_dim()));
  if (config.rope_scaling.has_value() && config.rope_scaling->mscale_all_dim != 0.0) {
    const double m = YarnMscale(config.rope_scaling->factor, config.rope_scaling->mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

absl::StatusOr<std::unique_ptr<ir::Graph>> BuildDeepSeekGraph(const DeepSeekConfig& config,
                                                              const GraphOptions& options) {
  auto graph = std::make_unique<ir::Graph>("main");
  DeepSeekGraphWriter writer(config, options, *graph);
  DSRT_RETURN_IF_ERROR(writer.Write());
  return graph;
}

absl::StatusOr<std::unique_ptr<ir::Graph>> BuildDeepSeekMtpGraph(const DeepSeekConfig& config,
                                                                 const GraphOptions& options, int64_t depth) {
  if (depth < 0 || depth >= config.num_nextn_predict_layers) {
    return absl::InvalidArgumentError(absl::StrCat("MTP depth ", depth, ": the config has ",
                                                   config.num_nextn_predict_layers, " MTP layer(s)"));
  }
  auto graph = std::make_unique<ir::Graph>("mtp");
  DeepSeekGraphWriter writer(config, options, *graph);
  DSRT_RETURN_IF_ERROR(writer.WriteMtp(depth));
  return graph;
}

}  // namespace dsrt::models
