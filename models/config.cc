#include "models/config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"

namespace dsrt::models {
namespace {

using Json = nlohmann::json;

// Reads typed values out of one JSON object. Every error names the source file and
// the full key ("rope_scaling.factor"). Absent keys keep the caller's default.
class JsonReader {
 public:
  JsonReader(const Json& object, absl::string_view source, std::string prefix = "")
      : object_(object), source_(source), prefix_(std::move(prefix)) {}

  JsonReader Nested(const Json& object, std::string prefix) const {
    return JsonReader(object, source_, prefix_ + prefix);
  }

  bool Has(const char* key) const { return object_.contains(key); }
  bool IsNull(const char* key) const { return Has(key) && object_.at(key).is_null(); }

  absl::Status Error(const char* key, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": key '", prefix_, key, "' ", what));
  }

  absl::Status Require(const char* key) const {
    if (Has(key) && !object_.at(key).is_null()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ": required key '", prefix_, key, "' is missing"));
  }

  absl::Status Int(const char* key, int64_t* out) const {
    if (!Has(key)) return absl::OkStatus();
    const Json& value = object_.at(key);
    if (value.is_number_unsigned()) {
      const uint64_t u = value.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return Error(key, "is out of range");
      *out = static_cast<int64_t>(u);
      return absl::OkStatus();
    }
    if (value.is_number_integer()) {
      *out = value.get<int64_t>();
      return absl::OkStatus();
    }
    if (value.is_number_float()) {
      const double d = value.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) {
        *out = static_cast<int64_t>(d);
        return absl::OkStatus();
      }
    }
    return Error(key, absl::StrCat("must be an integer, got ", Describe(value)));
  }

  // null → nullopt; absent → unchanged.
  absl::Status NullableInt(const char* key, std::optional<int64_t>* out) const {
    if (!Has(key)) return absl::OkStatus();
    if (IsNull(key)) {
      out->reset();
      return absl::OkStatus();
    }
    int64_t value = 0;
    DSRT_RETURN_IF_ERROR(Int(key, &value));
    *out = value;
    return absl::OkStatus();
  }

  // null → `null_value`; absent → unchanged.
  absl::Status IntOrNull(const char* key, int64_t null_value, int64_t* out) const {
    std::optional<int64_t> value = *out;
    DSRT_RETURN_IF_ERROR(NullableInt(key, &value));
    *out = value.value_or(null_value);
    return absl::OkStatus();
  }

  absl::Status Double(const char* key, double* out) const {
    if (!Has(key)) return absl::OkStatus();
    const Json& value = object_.at(key);
    if (!value.is_number()) return Error(key, absl::StrCat("must be a number, got ", Describe(value)));
    const double d = value.get<double>();
    if (!std::isfinite(d)) return Error(key, "must be finite");
    *out = d;
    return absl::OkStatus();
  }

  absl::Status Bool(const char* key, bool* out) const {
    if (!Has(key)) return absl::OkStatus();
    const Json& value = object_.at(key);
    if (!value.is_boolean()) return Error(key, absl::StrCat("must be true or false, got ", Describe(value)));
    *out = value.get<bool>();
    return absl::OkStatus();
  }

  absl::Status String(const char* key, std::string* out) const {
    if (!Has(key)) return absl::OkStatus();
    const Json& value = object_.at(key);
    if (!value.is_string()) return Error(key, absl::StrCat("must be a string, got ", Describe(value)));
    *out = value.get<std::string>();
    return absl::OkStatus();
  }

  // A token id may be null (keep the default) or, in some configs, a list (take the first).
  absl::Status TokenId(const char* key, int64_t* out) const {
    if (!Has(key) || IsNull(key)) return absl::OkStatus();
    const Json& value = object_.at(key);
    if (value.is_array() && !value.empty()) {
      const Json first = Json::object({{key, value.front()}});
      return Nested(first, "").Int(key, out);
    }
    return Int(key, out);
  }

  static std::string Describe(const Json& value) {
    std::string text = value.dump();
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    return absl::StrCat(value.type_name(), " ", text);
  }

 private:
  const Json& object_;
  absl::string_view source_;
  std::string prefix_;
};

absl::Status ApplyModelTypeDefaults(const JsonReader& reader, DeepSeekConfig& config) {
  if (!reader.Has("model_type")) return reader.Require("model_type");
  DSRT_RETURN_IF_ERROR(reader.String("model_type", &config.model_type));
  if (config.model_type == "deepseek_v2") {
    // HF DeepseekV2Config defaults.
    config.vocab_size = 102400;
    config.hidden_size = 4096;
    config.intermediate_size = 11008;
    config.moe_intermediate_size = 1407;
    config.num_hidden_layers = 30;
    config.num_attention_heads = 32;
    config.n_shared_experts = 0;
    config.n_routed_experts = 0;
    config.routed_scaling_factor = 1.0;
    config.q_lora_rank = 1536;
    config.topk_method = TopkMethod::kGreedy;
    config.n_group = 1;
    config.topk_group = 1;
    config.num_experts_per_tok = 0;
    config.first_k_dense_replace = 0;
    config.norm_topk_prob = false;
    config.scoring_func = ScoringFunc::kSoftmax;
    config.max_position_embeddings = 2048;
    config.bos_token_id = 100000;
    config.eos_token_id = 100001;
    config.num_nextn_predict_layers = 0;
  } else if (config.model_type == "deepseek_v3") {
    // HF DeepseekV3Config defaults.
    config.vocab_size = 129280;
    config.hidden_size = 7168;
    config.intermediate_size = 18432;
    config.moe_intermediate_size = 2048;
    config.num_hidden_layers = 61;
    config.num_attention_heads = 128;
    config.n_shared_experts = 1;
    config.n_routed_experts = 256;
    config.routed_scaling_factor = 2.5;
    config.q_lora_rank = 1536;
    config.topk_method = TopkMethod::kNoauxTc;
    config.n_group = 8;
    config.topk_group = 4;
    config.num_experts_per_tok = 8;
    config.first_k_dense_replace = 3;
    config.norm_topk_prob = true;
    config.scoring_func = ScoringFunc::kSigmoid;
    config.max_position_embeddings = 4096;
    config.bos_token_id = 0;
    config.eos_token_id = 1;
    config.num_nextn_predict_layers = 1;
  } else {
    return reader.Error("model_type", absl::StrCat("names an unsupported model type '", config.model_type,
                                                   "' (expected deepseek_v2 or deepseek_v3)"));
  }
  config.kv_lora_rank = 512;
  config.qk_rope_head_dim = 64;
  config.qk_nope_head_dim = 128;
  config.v_head_dim = 128;
  config.moe_layer_freq = 1;
  config.hidden_act = "silu";
  config.rope_theta = 10000.0;
  config.rms_norm_eps = 1e-6;
  return absl::OkStatus();
}

absl::Status ReadDims(const JsonReader& reader, DeepSeekConfig& config) {
  // A config without its model's size is broken, whatever HF's defaults say.
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads"}) {
    DSRT_RETURN_IF_ERROR(reader.Require(key));
  }
  DSRT_RETURN_IF_ERROR(reader.Int("vocab_size", &config.vocab_size));
  DSRT_RETURN_IF_ERROR(reader.Int("hidden_size", &config.hidden_size));
  DSRT_RETURN_IF_ERROR(reader.Int("intermediate_size", &config.intermediate_size));
  DSRT_RETURN_IF_ERROR(reader.Int("moe_intermediate_size", &config.moe_intermediate_size));
  DSRT_RETURN_IF_ERROR(reader.Int("num_hidden_layers", &config.num_hidden_layers));
  DSRT_RETURN_IF_ERROR(reader.Int("num_attention_heads", &config.num_attention_heads));
  config.num_key_value_heads = config.num_attention_heads;  // HF: None → num_attention_heads
  DSRT_RETURN_IF_ERROR(reader.IntOrNull("num_key_value_heads", config.num_attention_heads,
                                        &config.num_key_value_heads));
  DSRT_RETURN_IF_ERROR(reader.Int("kv_lora_rank", &config.kv_lora_rank));
  DSRT_RETURN_IF_ERROR(reader.NullableInt("q_lora_rank", &config.q_lora_rank));
  DSRT_RETURN_IF_ERROR(reader.Int("qk_rope_head_dim", &config.qk_rope_head_dim));
  DSRT_RETURN_IF_ERROR(reader.Int("qk_nope_head_dim", &config.qk_nope_head_dim));
  DSRT_RETURN_IF_ERROR(reader.Int("v_head_dim", &config.v_head_dim));
  return reader.Int("num_nextn_predict_layers", &config.num_nextn_predict_layers);
}

absl::StatusOr<TopkMethod> ParseTopkMethod(const JsonReader& reader, const std::string& name) {
  if (name == "greedy" || name == "gready") return TopkMethod::kGreedy;
  if (name == "group_limited_greedy") return TopkMethod::kGroupLimitedGreedy;
  if (name == "noaux_tc") return TopkMethod::kNoauxTc;
  return reader.Error("topk_method", absl::StrCat("names an unsupported method '", name,
                                                  "' (expected greedy, group_limited_greedy or noaux_tc)"));
}

absl::StatusOr<ScoringFunc> ParseScoringFunc(const JsonReader& reader, const std::string& name) {
  if (name == "softmax") return ScoringFunc::kSoftmax;
  if (name == "sigmoid") return ScoringFunc::kSigmoid;
  return reader.Error("scoring_func",
                      absl::StrCat("names an unsupported function '", name, "' (expected softmax or sigmoid)"));
}

absl::Status ReadMoe(const JsonReader& reader, DeepSeekConfig& config) {
  DSRT_RETURN_IF_ERROR(reader.IntOrNull("n_shared_experts", 0, &config.n_shared_experts));
  DSRT_RETURN_IF_ERROR(reader.IntOrNull("n_routed_experts", 0, &config.n_routed_experts));
  DSRT_RETURN_IF_ERROR(reader.IntOrNull("num_experts_per_tok", 0, &config.num_experts_per_tok));
  DSRT_RETURN_IF_ERROR(reader.IntOrNull("n_group", 1, &config.n_group));
  DSRT_RETURN_IF_ERROR(reader.IntOrNull("topk_group", 1, &config.topk_group));
  DSRT_RETURN_IF_ERROR(reader.Double("routed_scaling_factor", &config.routed_scaling_factor));
  DSRT_RETURN_IF_ERROR(reader.Int("moe_layer_freq", &config.moe_layer_freq));
  DSRT_RETURN_IF_ERROR(reader.Int("first_k_dense_replace", &config.first_k_dense_replace));
  DSRT_RETURN_IF_ERROR(reader.Bool("norm_topk_prob", &config.norm_topk_prob));
  if (reader.Has("topk_method")) {
    std::string name;
    DSRT_RETURN_IF_ERROR(reader.String("topk_method", &name));
    DSRT_ASSIGN_OR_RETURN(config.topk_method, ParseTopkMethod(reader, name));
  }
  if (reader.Has("scoring_func")) {
    std::string name;
    DSRT_RETURN_IF_ERROR(reader.String("scoring_func", &name));
    DSRT_ASSIGN_OR_RETURN(config.scoring_func, ParseScoringFunc(reader, name));
  }
  return absl::OkStatus();
}

absl::Status ReadRopeScaling(const JsonReader& reader, const Json& root, DeepSeekConfig& config) {
  if (!reader.Has("rope_scaling") || reader.IsNull("rope_scaling")) return absl::OkStatus();
  const Json& object = root.at("rope_scaling");
  if (!object.is_object()) {
    return reader.Error("rope_scaling", absl::StrCat("must be null or an object, got ", JsonReader::Describe(object)));
  }
  const JsonReader scaling = reader.Nested(object, "rope_scaling.");
  const char* type_key = scaling.Has("type") ? "type" : "rope_type";
  if (!scaling.Has(type_key)) return reader.Error("rope_scaling", "has neither 'type' nor 'rope_type'");
  RopeScaling rope;
  DSRT_RETURN_IF_ERROR(scaling.String(type_key, &rope.type));
  if (rope.type != "yarn") {
    return scaling.Error(type_key, absl::StrCat("is '", rope.type, "'; only 'yarn' is supported"));
  }
  DSRT_RETURN_IF_ERROR(scaling.Require("factor"));
  DSRT_RETURN_IF_ERROR(scaling.Double("factor", &rope.factor));
  DSRT_RETURN_IF_ERROR(scaling.Int("original_max_position_embeddings", &rope.original_max_position_embeddings));
  DSRT_RETURN_IF_ERROR(scaling.Double("beta_fast", &rope.beta_fast));
  DSRT_RETURN_IF_ERROR(scaling.Double("beta_slow", &rope.beta_slow));
  DSRT_RETURN_IF_ERROR(scaling.Double("mscale", &rope.mscale));
  DSRT_RETURN_IF_ERROR(scaling.Double("mscale_all_dim", &rope.mscale_all_dim));
  if (rope.factor <= 0) return scaling.Error("factor", absl::StrCat("must be positive, got ", rope.factor));
  if (rope.original_max_position_embeddings <= 0) {
    return scaling.Error("original_max_position_embeddings", "must be positive");
  }
  config.rope_scaling = rope;
  return absl::OkStatus();
}

absl::Status ReadQuantization(const JsonReader& reader, const Json& root, DeepSeekConfig& config) {
  if (!reader.Has("quantization_config") || reader.IsNull("quantization_config")) return absl::OkStatus();
  const Json& object = root.at("quantization_config");
  if (!object.is_object()) {
    return reader.Error("quantization_config",
                        absl::StrCat("must be an object, got ", JsonReader::Describe(object)));
  }
  const std::string method = object.contains("quant_method") && object.at("quant_method").is_string()
                                 ? object.at("quant_method").get<std::string>()
                                 : "";
  if (method != "fp8") {
    return reader.Error("quantization_config",
                        absl::StrCat("has quant_method '", method, "'; only 'fp8' is supported"));
  }
  if (object.contains("fmt") && object.at("fmt") != "e4m3") {
    return reader.Error("quantization_config",
                        absl::StrCat("has fmt ", object.at("fmt").dump(), "; only \"e4m3\" is supported"));
  }
  std::pair<int64_t, int64_t> block{128, 128};
  if (object.contains("weight_block_size")) {
    const Json& sizes = object.at("weight_block_size");
    const bool valid = sizes.is_array() && sizes.size() == 2 && sizes[0].is_number_integer() &&
                       sizes[1].is_number_integer() && sizes[0].get<int64_t>() > 0 && sizes[1].get<int64_t>() > 0;
    if (!valid) {
      return reader.Error("quantization_config",
                          absl::StrCat("has weight_block_size ", JsonReader::Describe(sizes),
                                       "; expected two positive integers"));
    }
    block = {sizes[0].get<int64_t>(), sizes[1].get<int64_t>()};
  }
  config.fp8_block_size = block;
  return absl::OkStatus();
}

absl::Status ReadMisc(const JsonReader& reader, DeepSeekConfig& config) {
  DSRT_RETURN_IF_ERROR(reader.String("hidden_act", &config.hidden_act));
  DSRT_RETURN_IF_ERROR(reader.Int("max_position_embeddings", &config.max_position_embeddings));
  DSRT_RETURN_IF_ERROR(reader.Double("rope_theta", &config.rope_theta));
  DSRT_RETURN_IF_ERROR(reader.Double("rms_norm_eps", &config.rms_norm_eps));
  DSRT_RETURN_IF_ERROR(reader.Bool("tie_word_embeddings", &config.tie_word_embeddings));
  DSRT_RETURN_IF_ERROR(reader.Bool("attention_bias", &config.attention_bias));
  DSRT_RETURN_IF_ERROR(reader.TokenId("bos_token_id", &config.bos_token_id));
  DSRT_RETURN_IF_ERROR(reader.TokenId("eos_token_id", &config.eos_token_id));
  if (reader.Has("torch_dtype") && !reader.IsNull("torch_dtype")) {
    DSRT_RETURN_IF_ERROR(reader.String("torch_dtype", &config.torch_dtype));
  }
  return absl::OkStatus();
}

absl::Status Positive(const JsonReader& reader, const char* key, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return reader.Error(key, absl::StrCat("must be positive, got ", value));
}

absl::Status ValidateMoe(const JsonReader& reader, const DeepSeekConfig& config) {
  if (config.n_shared_experts < 0) return reader.Error("n_shared_experts", "must not be negative");
  if (config.n_routed_experts < 0) return reader.Error("n_routed_experts", "must not be negative");
  if (config.moe_layer_freq < 1) return reader.Error("moe_layer_freq", "must be at least 1");
  if (config.first_k_dense_replace < 0) return reader.Error("first_k_dense_replace", "must not be negative");
  if (config.n_routed_experts == 0) return absl::OkStatus();

  DSRT_RETURN_IF_ERROR(Positive(reader, "moe_intermediate_size", config.moe_intermediate_size));
  if (config.num_experts_per_tok < 1 || config.num_experts_per_tok > config.n_routed_experts) {
    return reader.Error("num_experts_per_tok", absl::StrCat("must be between 1 and n_routed_experts (",
                                                            config.n_routed_experts, "), got ",
                                                            config.num_experts_per_tok));
  }
  if (config.routed_scaling_factor <= 0) return reader.Error("routed_scaling_factor", "must be positive");
  if (config.n_group < 1 || config.n_routed_experts % config.n_group != 0) {
    return reader.Error("n_group", absl::StrCat("(", config.n_group, ") must divide n_routed_experts (",
                                                config.n_routed_experts, ")"));
  }
  if (config.topk_group < 1 || config.topk_group > config.n_group) {
    return reader.Error("topk_group", absl::StrCat("(", config.topk_group, ") must be between 1 and n_group (",
                                                   config.n_group, ")"));
  }
  const int64_t experts_per_group = config.n_routed_experts / config.n_group;
  if (config.topk_method == TopkMethod::kGreedy) return absl::OkStatus();
  if (config.num_experts_per_tok > config.topk_group * experts_per_group) {
    return reader.Error("num_experts_per_tok",
                        absl::StrCat("(", config.num_experts_per_tok, ") exceeds the experts of the topk_group (",
                                     config.topk_group, ") kept groups of ", experts_per_group));
  }
  if (config.topk_method == TopkMethod::kNoauxTc && experts_per_group < 2) {
    return reader.Error("n_group", "leaves fewer than 2 experts a group; noaux_tc scores a group by its best two");
  }
  return absl::OkStatus();
}

absl::Status Validate(const JsonReader& reader, const DeepSeekConfig& config) {
  DSRT_RETURN_IF_ERROR(Positive(reader, "vocab_size", config.vocab_size));
  DSRT_RETURN_IF_ERROR(Positive(reader, "hidden_size", config.hidden_size));
  DSRT_RETURN_IF_ERROR(Positive(reader, "intermediate_size", config.intermediate_size));
  DSRT_RETURN_IF_ERROR(Positive(reader, "num_hidden_layers", config.num_hidden_layers));
  DSRT_RETURN_IF_ERROR(Positive(reader, "num_attention_heads", config.num_attention_heads));
  DSRT_RETURN_IF_ERROR(Positive(reader, "num_key_value_heads", config.num_key_value_heads));
  DSRT_RETURN_IF_ERROR(Positive(reader, "kv_lora_rank", config.kv_lora_rank));
  if (config.q_lora_rank.has_value()) DSRT_RETURN_IF_ERROR(Positive(reader, "q_lora_rank", *config.q_lora_rank));
  DSRT_RETURN_IF_ERROR(Positive(reader, "qk_rope_head_dim", config.qk_rope_head_dim));
  if (config.qk_rope_head_dim % 2 != 0) {
    return reader.Error("qk_rope_head_dim", absl::StrCat("must be even, got ", config.qk_rope_head_dim));
  }
  DSRT_RETURN_IF_ERROR(Positive(reader, "qk_nope_head_dim", config.qk_nope_head_dim));
  DSRT_RETURN_IF_ERROR(Positive(reader, "v_head_dim", config.v_head_dim));
  DSRT_RETURN_IF_ERROR(Positive(reader, "max_position_embeddings", config.max_position_embeddings));
  if (config.num_nextn_predict_layers < 0) return reader.Error("num_nextn_predict_layers", "must not be negative");
  if (config.hidden_act != "silu") {
    return reader.Error("hidden_act", absl::StrCat("names an unsupported activation '", config.hidden_act,
                                                   "' (expected silu)"));
  }
  if (config.rope_theta <= 0) return reader.Error("rope_theta", "must be positive");
  if (config.rms_norm_eps <= 0) return reader.Error("rms_norm_eps", "must be positive");
  if (config.attention_bias) return reader.Error("attention_bias", "is true; DeepSeek attention has no biases");
  return ValidateMoe(reader, config);
}

}  // namespace

bool DeepSeekConfig::IsMoeLayer(int64_t layer) const {
  return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
}

absl::StatusOr<DeepSeekConfig> ParseDeepSeekConfig(absl::string_view json_text, absl::string_view source) {
  const Json root = Json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  if (!root.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));

  const JsonReader reader(root, source);
  DeepSeekConfig config;
  DSRT_RETURN_IF_ERROR(ApplyModelTypeDefaults(reader, config));
  DSRT_RETURN_IF_ERROR(ReadDims(reader, config));
  DSRT_RETURN_IF_ERROR(ReadMoe(reader, config));
  DSRT_RETURN_IF_ERROR(ReadRopeScaling(reader, root, config));
  DSRT_RETURN_IF_ERROR(ReadQuantization(reader, root, config));
  DSRT_RETURN_IF_ERROR(ReadMisc(reader, config));
  DSRT_RETURN_IF_ERROR(Validate(reader, config));
  return config;
}

absl::StatusOr<DeepSeekConfig> LoadDeepSeekConfig(const std::string& checkpoint_dir) {
  const std::string path = checkpoint_dir + "/config.json";
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open (is this a checkpoint directory?)"));
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return ParseDeepSeekConfig(text.str(), path);
}

}  // namespace dsrt::models
