#include "models/hf_names.h"

#include <array>

#include "absl/strings/str_cat.h"

namespace dsrt::models {
namespace {

// Which part of the model a row belongs to, in the order they are listed.
enum class Scope {
  kModelStart,    // before the decoder layers
  kLayer,         // every decoder layer, main and MTP
  kModelEnd,      // after the decoder layers
  kMtpStart,      // an MTP layer, before its decoder-layer tensors
  kMtpEnd,        // an MTP layer, after them
};

// When a row exists.
enum class When {
  kAlways,
  kNoQLora,        // q_lora_rank null
  kQLora,
  kDenseMlp,       // !IsMoeLayer(layer)
  kMoe,            // IsMoeLayer(layer)
  kNoauxTc,        // MoE layer with topk_method noaux_tc
  kEachExpert,     // MoE layer, once per routed expert
  kSharedExperts,  // MoE layer with n_shared_experts > 0
  kUntiedHead,     // tie_word_embeddings false
};

enum class Dim {
  kNone,
  kVocab,
  kHidden,
  kTwoHidden,
  kQLoraRank,
  kQProjOut,  // heads × (qk_nope + qk_rope)
  kKvAOut,    // kv_lora_rank + qk_rope
  kKvLoraRank,
  kKvBOut,    // heads × (qk_nope + v)
  kOProjIn,   // heads × v
  kIntermediate,
  kMoeIntermediate,
  kSharedIntermediate,
  kRoutedExperts,
};

struct Row {
  Scope scope;
  absl::string_view suffix;  // a full name at model scope; under "model.layers.N." otherwise
  When when;
  TensorRole role;
  StorageKind storage;
  std::array<Dim, 2> dims;
  absl::string_view copy_of = {};
};

using R = TensorRole;
using S = StorageKind;

// The DeepSeek architecture's tensors. Every decoder-layer linear weight is FP8 in an
// FP8 checkpoint; embeddings, norms, the router, lm_head and the MTP extras are not.
constexpr Row kRows[] = {
    {Scope::kModelStart, kEmbedTokens, When::kAlways, R::kEmbedding, S::kBF16, {Dim::kVocab, Dim::kHidden}},

    {Scope::kLayer, kQProj, When::kNoQLora, R::kProjection, S::kFP8, {Dim::kQProjOut, Dim::kHidden}},
    {Scope::kLayer, kQAProj, When::kQLora, R::kProjection, S::kFP8, {Dim::kQLoraRank, Dim::kHidden}},
    {Scope::kLayer, kQALayernorm, When::kQLora, R::kNorm, S::kBF16, {Dim::kQLoraRank, Dim::kNone}},
    {Scope::kLayer, kQBProj, When::kQLora, R::kProjection, S::kFP8, {Dim::kQProjOut, Dim::kQLoraRank}},
    {Scope::kLayer, kKvAProjWithMqa, When::kAlways, R::kProjection, S::kFP8, {Dim::kKvAOut, Dim::kHidden}},
    {Scope::kLayer, kKvALayernorm, When::kAlways, R::kNorm, S::kBF16, {Dim::kKvLoraRank, Dim::kNone}},
    {Scope::kLayer, kKvBProj, When::kAlways, R::kProjection, S::kFP8, {Dim::kKvBOut, Dim::kKvLoraRank}},
    {Scope::kLayer, kOProj, When::kAlways, R::kResidualProjection, S::kFP8, {Dim::kHidden, Dim::kOProjIn}},
    {Scope::kLayer, kMlpGateProj, When::kDenseMlp, R::kProjection, S::kFP8, {Dim::kIntermediate, Dim::kHidden}},
    {Scope::kLayer, kMlpUpProj, When::kDenseMlp, R::kProjection, S::kFP8, {Dim::kIntermediate, Dim::kHidden}},
    {Scope::kLayer, kMlpDownProj, When::kDenseMlp, R::kResidualProjection, S::kFP8, {Dim::kHidden, Dim::kIntermediate}},
    {Scope::kLayer, kRouterGate, When::kMoe, R::kRouter, S::kBF16, {Dim::kRoutedExperts, Dim::kHidden}},
    {Scope::kLayer, kRouterBias, When::kNoauxTc, R::kRouterBias, S::kF32, {Dim::kRoutedExperts, Dim::kNone}},
    {Scope::kLayer, kGateProj, When::kEachExpert, R::kProjection, S::kFP8, {Dim::kMoeIntermediate, Dim::kHidden}},
    {Scope::kLayer, kUpProj, When::kEachExpert, R::kProjection, S::kFP8, {Dim::kMoeIntermediate, Dim::kHidden}},
    {Scope::kLayer, kDownProj, When::kEachExpert, R::kResidualProjection, S::kFP8, {Dim::kHidden, Dim::kMoeIntermediate}},
    {Scope::kLayer, kSharedGateProj, When::kSharedExperts, R::kProjection, S::kFP8, {Dim::kSharedIntermediate, Dim::kHidden}},
    {Scope::kLayer, kSharedUpProj, When::kSharedExperts, R::kProjection, S::kFP8, {Dim::kSharedIntermediate, Dim::kHidden}},
    {Scope::kLayer, kSharedDownProj, When::kSharedExperts, R::kResidualProjection, S::kFP8, {Dim::kHidden, Dim::kSharedIntermediate}},
    {Scope::kLayer, kInputLayernorm, When::kAlways, R::kNorm, S::kBF16, {Dim::kHidden, Dim::kNone}},
    {Scope::kLayer, kPostAttentionLayernorm, When::kAlways, R::kNorm, S::kBF16, {Dim::kHidden, Dim::kNone}},

    {Scope::kModelEnd, kFinalNorm, When::kAlways, R::kNorm, S::kBF16, {Dim::kHidden, Dim::kNone}},
    {Scope::kModelEnd, kLmHead, When::kUntiedHead, R::kLmHead, S::kBF16, {Dim::kVocab, Dim::kHidden}},

    {Scope::kMtpStart, kMtpEmbedTokens, When::kAlways, R::kEmbedding, S::kBF16, {Dim::kVocab, Dim::kHidden}, kEmbedTokens},
    {Scope::kMtpStart, kMtpEnorm, When::kAlways, R::kNorm, S::kBF16, {Dim::kHidden, Dim::kNone}},
    {Scope::kMtpStart, kMtpHnorm, When::kAlways, R::kNorm, S::kBF16, {Dim::kHidden, Dim::kNone}},
    {Scope::kMtpStart, kMtpEhProj, When::kAlways, R::kProjection, S::kBF16, {Dim::kHidden, Dim::kTwoHidden}},
    {Scope::kMtpEnd, kMtpSharedHeadNorm, When::kAlways, R::kNorm, S::kBF16, {Dim::kHidden, Dim::kNone}},
    {Scope::kMtpEnd, kMtpSharedHeadHead, When::kAlways, R::kLmHead, S::kBF16, {Dim::kVocab, Dim::kHidden}, kLmHead},
};

int64_t DimValue(Dim dim, const DeepSeekConfig& c) {
  switch (dim) {
    case Dim::kNone: return 0;
    case Dim::kVocab: return c.vocab_size;
    case Dim::kHidden: return c.hidden_size;
    case Dim::kTwoHidden: return 2 * c.hidden_size;
    case Dim::kQLoraRank: return c.q_lora_rank.value_or(0);
    case Dim::kQProjOut: return c.num_attention_heads * c.qk_head_dim();
    case Dim::kKvAOut: return c.kv_lora_rank + c.qk_rope_head_dim;
    case Dim::kKvLoraRank: return c.kv_lora_rank;
    case Dim::kKvBOut: return c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim);
    case Dim::kOProjIn: return c.num_attention_heads * c.v_head_dim;
    case Dim::kIntermediate: return c.intermediate_size;
    case Dim::kMoeIntermediate: return c.moe_intermediate_size;
    case Dim::kSharedIntermediate: return c.shared_experts_intermediate_size();
    case Dim::kRoutedExperts: return c.n_routed_experts;
  }
  return 0;
}

bool RowExists(When when, const DeepSeekConfig& c, int64_t layer) {
  switch (when) {
    case When::kAlways: return true;
    case When::kNoQLora: return !c.q_lora_rank.has_value();
    case When::kQLora: return c.q_lora_rank.has_value();
    case When::kDenseMlp: return !c.IsMoeLayer(layer);
    case When::kMoe: return c.IsMoeLayer(layer);
    case When::kNoauxTc: return c.IsMoeLayer(layer) && c.topk_method == TopkMethod::kNoauxTc;
    case When::kEachExpert: return c.IsMoeLayer(layer);
    case When::kSharedExperts: return c.IsMoeLayer(layer) && c.n_shared_experts > 0;
    case When::kUntiedHead: return !c.tie_word_embeddings;
  }
  return false;
}

TensorSpec SpecFromRow(const Row& row, const DeepSeekConfig& config, std::string name, int64_t layer) {
  TensorSpec spec;
  spec.name = std::move(name);
  for (Dim dim : row.dims) {
    if (dim != Dim::kNone) spec.shape.push_back(DimValue(dim, config));
  }
  spec.role = row.role;
  spec.storage = row.storage;
  spec.layer = layer;
  spec.copy_of = std::string(row.copy_of);
  return spec;
}

void AppendExperts(const std::vector<const Row*>& expert_rows, const DeepSeekConfig& config, int64_t layer,
                   std::vector<TensorSpec>& specs) {
  for (int64_t expert = 0; !expert_rows.empty() && expert < config.n_routed_experts; ++expert) {
    for (const Row* row : expert_rows) {
      TensorSpec spec = SpecFromRow(*row, config, ExpertTensor(layer, expert, row->suffix), layer);
      spec.expert = expert;
      specs.push_back(std::move(spec));
    }
  }
}

// layer < 0: model scope, where suffixes are full names.
void AppendScope(Scope scope, const DeepSeekConfig& config, int64_t layer, std::vector<TensorSpec>& specs) {
  // Expert rows come out expert-major (HF's module order), where their run ends.
  std::vector<const Row*> expert_rows;
  for (const Row& row : kRows) {
    if (row.scope != scope || !RowExists(row.when, config, layer)) continue;
    if (row.when == When::kEachExpert) {
      expert_rows.push_back(&row);
      continue;
    }
    AppendExperts(expert_rows, config, layer, specs);
    expert_rows.clear();
    std::string name = layer < 0 ? std::string(row.suffix) : LayerTensor(layer, row.suffix);
    specs.push_back(SpecFromRow(row, config, std::move(name), layer));
  }
  AppendExperts(expert_rows, config, layer, specs);
}

}  // namespace

std::string LayerTensor(int64_t layer, absl::string_view suffix) {
  return absl::StrCat("model.layers.", layer, ".", suffix);
}

std::string ExpertTensor(int64_t layer, int64_t expert, absl::string_view projection) {
  return absl::StrCat("model.layers.", layer, ".mlp.experts.", expert, ".", projection);
}

std::string ScaleInvName(absl::string_view weight_name) { return absl::StrCat(weight_name, "_scale_inv"); }

std::vector<int64_t> ScaleInvShape(const std::vector<int64_t>& weight_shape, std::pair<int64_t, int64_t> block) {
  if (weight_shape.size() != 2) return {};
  return {(weight_shape[0] + block.first - 1) / block.first, (weight_shape[1] + block.second - 1) / block.second};
}

std::vector<TensorSpec> ExpectedTensors(const DeepSeekConfig& config, bool include_mtp) {
  std::vector<TensorSpec> specs;
  AppendScope(Scope::kModelStart, config, -1, specs);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) AppendScope(Scope::kLayer, config, layer, specs);
  AppendScope(Scope::kModelEnd, config, -1, specs);
  if (!include_mtp) return specs;
  for (int64_t k = 0; k < config.num_nextn_predict_layers; ++k) {
    const int64_t layer = config.num_hidden_layers + k;
    AppendScope(Scope::kMtpStart, config, layer, specs);
    AppendScope(Scope::kLayer, config, layer, specs);
    AppendScope(Scope::kMtpEnd, config, layer, specs);
  }
  return specs;
}

ir::DType StoredDType(const TensorSpec& spec, const DeepSeekConfig& config) {
  switch (spec.storage) {
    case StorageKind::kBF16: return ir::DType::kBF16;
    case StorageKind::kF32: return ir::DType::kF32;
    case StorageKind::kFP8: return config.fp8_block_size.has_value() ? ir::DType::kF8E4M3 : ir::DType::kBF16;
  }
  return ir::DType::kBF16;
}

std::vector<StoredTensor> StoredTensors(const DeepSeekConfig& config, bool include_mtp) {
  std::vector<StoredTensor> stored;
  for (const TensorSpec& spec : ExpectedTensors(config, include_mtp)) {
    const ir::DType dtype = StoredDType(spec, config);
    stored.push_back({spec.name, dtype, spec.shape});
    if (dtype == ir::DType::kF8E4M3) {
      stored.push_back({ScaleInvName(spec.name), ir::DType::kF32, ScaleInvShape(spec.shape, *config.fp8_block_size)});
    }
  }
  return stored;
}

}  // namespace dsrt::models
