#include "models/synth.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ir/dtype.h"
#include "ir/status_macros.h"
#include "models/hf_names.h"
#include "models/safetensors_writer.h"

namespace dsrt::models {
namespace {

// ---------------------------------------------------------------------------
// Presets
// ---------------------------------------------------------------------------

// The golden case tiny-v2-lite's config.json.
constexpr char kTinyV2Lite[] = R"json({
  "architectures": [
    "DeepseekV2ForCausalLM"
  ],
  "model_type": "deepseek_v2",
  "vocab_size": 512,
  "hidden_size": 64,
  "intermediate_size": 160,
  "moe_intermediate_size": 32,
  "num_hidden_layers": 3,
  "num_attention_heads": 4,
  "num_key_value_heads": 4,
  "n_shared_experts": 2,
  "n_routed_experts": 8,
  "routed_scaling_factor": 1.0,
  "kv_lora_rank": 32,
  "q_lora_rank": null,
  "qk_rope_head_dim": 16,
  "qk_nope_head_dim": 16,
  "v_head_dim": 16,
  "topk_method": "greedy",
  "n_group": 1,
  "topk_group": 1,
  "num_experts_per_tok": 3,
  "moe_layer_freq": 1,
  "first_k_dense_replace": 1,
  "norm_topk_prob": false,
  "scoring_func": "softmax",
  "aux_loss_alpha": 0.001,
  "seq_aux": true,
  "hidden_act": "silu",
  "max_position_embeddings": 1280,
  "rope_theta": 10000.0,
  "rope_scaling": {
    "type": "yarn",
    "factor": 40,
    "original_max_position_embeddings": 32,
    "beta_fast": 32,
    "beta_slow": 1,
    "mscale": 0.707,
    "mscale_all_dim": 0.707
  },
  "rms_norm_eps": 1e-06,
  "tie_word_embeddings": false,
  "attention_bias": false,
  "attention_dropout": 0.0,
  "initializer_range": 0.02,
  "use_cache": true,
  "bos_token_id": 0,
  "eos_token_id": 1,
  "torch_dtype": "bfloat16"
}
)json";

// The golden case tiny-v2's config.json.
constexpr char kTinyV2[] = R"json({
  "architectures": [
    "DeepseekV2ForCausalLM"
  ],
  "model_type": "deepseek_v2",
  "vocab_size": 768,
  "hidden_size": 96,
  "intermediate_size": 192,
  "moe_intermediate_size": 48,
  "num_hidden_layers": 3,
  "num_attention_heads": 6,
  "num_key_value_heads": 6,
  "n_shared_experts": 1,
  "n_routed_experts": 16,
  "routed_scaling_factor": 16.0,
  "kv_lora_rank": 32,
  "q_lora_rank": 48,
  "qk_rope_head_dim": 8,
  "qk_nope_head_dim": 16,
  "v_head_dim": 24,
  "topk_method": "group_limited_greedy",
  "n_group": 4,
  "topk_group": 2,
  "num_experts_per_tok": 4,
  "moe_layer_freq": 1,
  "first_k_dense_replace": 1,
  "norm_topk_prob": false,
  "scoring_func": "softmax",
  "aux_loss_alpha": 0.001,
  "seq_aux": true,
  "hidden_act": "silu",
  "max_position_embeddings": 1280,
  "rope_theta": 10000.0,
  "rope_scaling": {
    "type": "yarn",
    "factor": 40,
    "original_max_position_embeddings": 32,
    "beta_fast": 32,
    "beta_slow": 1,
    "mscale": 1.0,
    "mscale_all_dim": 1.0
  },
  "rms_norm_eps": 1e-06,
  "tie_word_embeddings": false,
  "attention_bias": false,
  "attention_dropout": 0.0,
  "initializer_range": 0.02,
  "use_cache": true,
  "bos_token_id": 0,
  "eos_token_id": 1,
  "torch_dtype": "bfloat16"
}
)json";

// The golden case tiny-v3's config.json.
constexpr char kTinyV3[] = R"json({
  "architectures": [
    "DeepseekV3ForCausalLM"
  ],
  "model_type": "deepseek_v3",
  "vocab_size": 768,
  "hidden_size": 192,
  "intermediate_size": 320,
  "moe_intermediate_size": 64,
  "num_hidden_layers": 3,
  "num_attention_heads": 4,
  "num_key_value_heads": 4,
  "n_shared_experts": 1,
  "n_routed_experts": 16,
  "routed_scaling_factor": 2.5,
  "kv_lora_rank": 144,
  "q_lora_rank": 160,
  "qk_rope_head_dim": 32,
  "qk_nope_head_dim": 32,
  "v_head_dim": 32,
  "topk_method": "noaux_tc",
  "n_group": 4,
  "topk_group": 2,
  "num_experts_per_tok": 4,
  "moe_layer_freq": 1,
  "first_k_dense_replace": 1,
  "norm_topk_prob": true,
  "scoring_func": "sigmoid",
  "aux_loss_alpha": 0.001,
  "seq_aux": true,
  "hidden_act": "silu",
  "max_position_embeddings": 640,
  "rope_theta": 10000.0,
  "rope_scaling": {
    "type": "yarn",
    "factor": 40,
    "original_max_position_embeddings": 16,
    "beta_fast": 32,
    "beta_slow": 1,
    "mscale": 1.0,
    "mscale_all_dim": 1.0
  },
  "rms_norm_eps": 1e-06,
  "tie_word_embeddings": false,
  "attention_bias": false,
  "attention_dropout": 0.0,
  "initializer_range": 0.02,
  "use_cache": true,
  "bos_token_id": 0,
  "eos_token_id": 1,
  "torch_dtype": "bfloat16",
  "num_nextn_predict_layers": 1,
  "ep_size": 1,
  "quantization_config": {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "weight_block_size": [
      128,
      128
    ]
  }
}
)json";

// DeepSeek-V2-Lite's config.json (deepseek-ai/DeepSeek-V2-Lite), without auto_map.
constexpr char kV2LiteFull[] = R"json({
  "architectures": [
    "DeepseekV2ForCausalLM"
  ],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "aux_loss_alpha": 0.001,
  "bos_token_id": 100000,
  "eos_token_id": 100001,
  "first_k_dense_replace": 1,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 10944,
  "kv_lora_rank": 512,
  "max_position_embeddings": 163840,
  "model_type": "deepseek_v2",
  "moe_intermediate_size": 1408,
  "moe_layer_freq": 1,
  "n_group": 1,
  "n_routed_experts": 64,
  "n_shared_experts": 2,
  "norm_topk_prob": false,
  "num_attention_heads": 16,
  "num_experts_per_tok": 6,
  "num_hidden_layers": 27,
  "num_key_value_heads": 16,
  "pretraining_tp": 1,
  "q_lora_rank": null,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "beta_fast": 32,
    "beta_slow": 1,
    "factor": 40,
    "mscale": 0.707,
    "mscale_all_dim": 0.707,
    "original_max_position_embeddings": 4096,
    "type": "yarn"
  },
  "rope_theta": 10000,
  "routed_scaling_factor": 1.0,
  "scoring_func": "softmax",
  "seq_aux": true,
  "tie_word_embeddings": false,
  "topk_group": 1,
  "topk_method": "greedy",
  "torch_dtype": "bfloat16",
  "transformers_version": "4.33.1",
  "use_cache": true,
  "v_head_dim": 128,
  "vocab_size": 102400
}
)json";

// A preset is a config.json, or another preset's with some keys changed.
struct Preset {
  absl::string_view name;
  const char* config_json;
  const char* changes = nullptr;  // a JSON merge patch over config_json
};

constexpr Preset kPresets[] = {
    {"tiny-v2-lite", kTinyV2Lite},
    {"tiny-v2", kTinyV2},
    {"tiny-v3", kTinyV3},
    // Four V2-Lite-sized layers with DeepSeek-V2's q LoRA: a model this machine can build and
    // benchmark whose layers have real proportions.
    {"bench-l4", kV2LiteFull, R"({"num_hidden_layers": 4, "q_lora_rank": 1536, "transformers_version": null})"},
    {"v2-lite-full", kV2LiteFull},
    // bench-l4 with DeepSeek-V3's vocabulary and special-token ids, so the real V3
    // tokenizer fits: benchmarks and servers that take text.
    {"bench-v3tok", kV2LiteFull,
     R"({"num_hidden_layers": 4, "q_lora_rank": 1536, "transformers_version": null, "vocab_size": 129280,
         "bos_token_id": 0, "eos_token_id": 1})"},
    // tiny-v3's shape with DeepSeek-V3's real vocabulary, so that its real tokenizer fits.
    {"demo-v3", kTinyV3, R"({"vocab_size": 129280})"},
};

// ---------------------------------------------------------------------------
// Random values
// ---------------------------------------------------------------------------

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t Fnv1a(absl::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (char c : text) hash = (hash ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return hash;
}

// One stream per tensor name, so a tensor's values do not depend on what is written
// before it (sharding, include_mtp), and the MTP copies equal their originals.
class TensorRandom {
 public:
  TensorRandom(uint64_t seed, absl::string_view name) : engine_(SplitMix64(seed ^ Fnv1a(name))) {}

  // Approximately standard normal: the Irwin–Hall sum of four 16-bit uniforms, scaled
  // to unit variance. Bit-reproducible everywhere (no libm) and about 10× cheaper than
  // Box–Muller, which matters for 15 B parameters; tails end at ±3.46.
  float Normal() {
    const uint64_t bits = engine_();
    const uint32_t sum = static_cast<uint32_t>(bits & 0xffff) + ((bits >> 16) & 0xffff) + ((bits >> 32) & 0xffff) +
                         ((bits >> 48) & 0xffff);
    constexpr float kMean = 2.0f * 65535.0f;
    constexpr float kScale = 1.7320508f / 65535.0f;  // sqrt(12 / 4) per unit of the sum
    return (static_cast<float>(sum) - kMean) * kScale;
  }

  // Uniform in [lo, hi).
  float Uniform(float lo, float hi) {
    const double unit = static_cast<double>(engine_() >> 11) * 0x1.0p-53;
    return static_cast<float>(lo + (hi - lo) * unit);
  }

 private:
  std::mt19937_64 engine_;
};

// How one tensor's values are drawn: value = mean + stddev · Normal(), or uniform.
struct Distribution {
  float mean = 0.0f;
  float stddev = 0.0f;
  bool uniform = false;  // U(mean - stddev, mean + stddev)
};

Distribution DistributionFor(const TensorSpec& spec, const DeepSeekConfig& config) {
  const float fan_in = spec.shape.size() == 2 ? static_cast<float>(spec.shape[1]) : 1.0f;
  const float projection = 1.0f / std::sqrt(fan_in);
  switch (spec.role) {
    case TensorRole::kEmbedding: return {0.0f, 1.0f};
    case TensorRole::kNorm: return {1.0f, 0.1f};
    case TensorRole::kRouterBias: return {0.0f, 0.1f, /*uniform=*/true};
    case TensorRole::kProjection:
    case TensorRole::kRouter:
    case TensorRole::kLmHead: return {0.0f, projection};
    case TensorRole::kResidualProjection: {
      // Keeps the residual stream's variance bounded however deep the model is.
      const float depth_scale =
          std::min(1.0f, std::sqrt(2.0f / static_cast<float>(std::max<int64_t>(1, config.num_hidden_layers))));
      return {0.0f, projection * depth_scale};
    }
  }
  return {0.0f, projection};
}

void Draw(TensorRandom& random, const Distribution& distribution, std::vector<float>& values) {
  for (float& value : values) {
    value = distribution.uniform ? random.Uniform(distribution.mean - distribution.stddev,
                                                  distribution.mean + distribution.stddev)
                                 : distribution.mean + distribution.stddev * random.Normal();
  }
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

constexpr int64_t kChunkElements = 1 << 20;

absl::Status AppendAs(ir::DType dtype, const std::vector<float>& values, SafetensorsWriter& writer) {
  if (dtype == ir::DType::kF32) {
    return writer.Append(values.data(), static_cast<int64_t>(values.size() * sizeof(float)));
  }
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = ir::F32ToBF16(values[i]);
  return writer.Append(bits.data(), static_cast<int64_t>(bits.size() * sizeof(uint16_t)));
}

// Quantizes `rows` × `cols` values (one row block) in place of DeepSeek's fp8 weight
// quantizer: per block scale = max|block| / 448, value = e4m3(x / scale).
std::vector<uint8_t> QuantizeRowBlock(const std::vector<float>& values, int64_t rows, int64_t cols,
                                      int64_t block_cols, std::vector<float>& scales) {
  std::vector<uint8_t> codes(values.size());
  for (int64_t c0 = 0; c0 < cols; c0 += block_cols) {
    const int64_t c1 = std::min(cols, c0 + block_cols);
    float amax = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(values[r * cols + c]));
    }
    const float scale = amax > 0.0f ? amax / 448.0f : 1.0f;
    scales.push_back(scale);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = c0; c < c1; ++c) codes[r * cols + c] = F32ToF8E4M3(values[r * cols + c] / scale);
    }
  }
  return codes;
}

// Writes one tensor in row chunks. For F8_E4M3, `scales` receives its scale_inv
// (row-major over blocks).
absl::Status WriteTensor(const TensorSpec& spec, ir::DType dtype, const DeepSeekConfig& config, uint64_t seed,
                         SafetensorsWriter& writer, std::vector<float>& scales) {
  TensorRandom random(seed, spec.copy_of.empty() ? spec.name : spec.copy_of);
  const Distribution distribution = DistributionFor(spec, config);
  const int64_t cols = spec.shape.back();
  const int64_t rows = spec.shape.size() == 2 ? spec.shape[0] : 1;
  int64_t chunk_rows = std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, cols));
  if (dtype == ir::DType::kF8E4M3) chunk_rows = config.fp8_block_size->first;
  std::vector<float> values;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t chunk = std::min(chunk_rows, rows - r0);
    values.resize(chunk * cols);
    Draw(random, distribution, values);
    if (dtype != ir::DType::kF8E4M3) {
      DSRT_RETURN_IF_ERROR(AppendAs(dtype, values, writer));
      continue;
    }
    const std::vector<uint8_t> codes = QuantizeRowBlock(values, chunk, cols, config.fp8_block_size->second, scales);
    DSRT_RETURN_IF_ERROR(writer.Append(codes.data(), static_cast<int64_t>(codes.size())));
  }
  return absl::OkStatus();
}

// Index of the first tensor of each shard: split by bytes, no shard empty.
std::vector<size_t> ShardStarts(const std::vector<StoredTensor>& tensors, int num_shards) {
  std::vector<int64_t> bytes_before(tensors.size() + 1, 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    bytes_before[i + 1] =
        bytes_before[i] + SafetensorsEntryBytes({tensors[i].name, tensors[i].dtype, tensors[i].shape});
  }
  const int64_t total = bytes_before.back();
  std::vector<size_t> starts = {0};
  for (int shard = 1; shard < num_shards; ++shard) {
    const int64_t target = total / num_shards * shard;
    size_t start = starts.back() + 1;
    while (start < tensors.size() - (num_shards - shard) && bytes_before[start] < target) ++start;
    starts.push_back(start);
  }
  return starts;
}

std::string ShardFileName(int shard, int num_shards) {
  if (num_shards == 1) return "model.safetensors";
  return absl::StrFormat("model-%05d-of-%05d.safetensors", shard + 1, num_shards);
}

absl::Status WriteTextFile(const std::string& path, absl::string_view text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(text.data(), static_cast<std::streamsize>(text.size()));
  file.close();
  if (!file) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot write"));
  return absl::OkStatus();
}

bool IsSynthOutput(const std::string& name) {
  return name == "model.safetensors" || name == "model.safetensors.index.json" ||
         (name.rfind("model-", 0) == 0 && name.find("-of-") != std::string::npos &&
          name.size() > 12 && name.substr(name.size() - 12) == ".safetensors");
}

absl::Status PrepareOutputDir(const std::string& out_dir) {
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) return absl::PermissionDeniedError(absl::StrCat(out_dir, ": cannot create: ", error.message()));
  std::vector<std::filesystem::path> stale;
  for (const auto& entry : std::filesystem::directory_iterator(out_dir, error)) {
    if (IsSynthOutput(entry.path().filename().string())) stale.push_back(entry.path());
  }
  if (error) return absl::PermissionDeniedError(absl::StrCat(out_dir, ": cannot list: ", error.message()));
  for (const auto& path : stale) {
    if (!std::filesystem::remove(path, error)) {
      return absl::PermissionDeniedError(absl::StrCat(path.string(), ": cannot remove: ", error.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteIndex(const std::string& out_dir, const std::vector<StoredTensor>& tensors,
                        const std::vector<size_t>& starts) {
  const int num_shards = static_cast<int>(starts.size());
  std::map<std::string, std::string> weight_map;
  int64_t total_size = 0;
  int shard = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    while (shard + 1 < num_shards && i >= starts[shard + 1]) ++shard;
    weight_map[tensors[i].name] = ShardFileName(shard, num_shards);
    total_size += SafetensorsEntryBytes({tensors[i].name, tensors[i].dtype, tensors[i].shape});
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total_size}};
  index["weight_map"] = weight_map;
  return WriteTextFile(absl::StrCat(out_dir, "/model.safetensors.index.json"), index.dump(2) + "\n");
}

bool SameLayout(const std::vector<StoredTensor>& a, const std::vector<StoredTensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].dtype != b[i].dtype || a[i].shape != b[i].shape) return false;
  }
  return true;
}

// The checkpoint must describe itself: its config.json has to call for exactly the
// tensors written.
absl::Status CheckConfigTextMatches(const std::string& config_json_text, const std::vector<StoredTensor>& stored,
                                    bool include_mtp) {
  absl::StatusOr<DeepSeekConfig> parsed = ParseDeepSeekConfig(config_json_text, "synth config.json");
  if (!parsed.ok()) return parsed.status();
  if (SameLayout(StoredTensors(*parsed, include_mtp), stored)) return absl::OkStatus();
  return absl::InvalidArgumentError("synth: the config.json text describes other tensors than the config given");
}

}  // namespace

uint8_t F32ToF8E4M3(float value) {
  if (std::isnan(value)) return 0x7f;
  const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
  const float magnitude = std::fabs(value);
  if (magnitude >= 448.0f) return sign | 0x7e;  // saturate (also ±inf)
  if (magnitude < 0x1.0p-6f) {
    // Subnormals are multiples of 2^-9; the nearest-even rounding of 8 lands on the
    // smallest normal, whose bits (0x08) follow on.
    return sign | static_cast<uint8_t>(std::nearbyint(magnitude * 512.0f));
  }
  int exponent = 0;
  const float fraction = std::frexp(magnitude, &exponent);  // magnitude = fraction · 2^exponent, fraction in [0.5, 1)
  int mantissa = static_cast<int>(std::nearbyint((fraction * 2.0f - 1.0f) * 8.0f));
  int biased = exponent - 1 + 7;
  if (mantissa == 8) {
    mantissa = 0;
    ++biased;
  }
  return sign | static_cast<uint8_t>((biased << 3) | mantissa);
}

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const Preset& preset : kPresets) names.emplace_back(preset.name);
  return names;
}

absl::StatusOr<std::string> PresetConfigJson(absl::string_view preset) {
  for (const Preset& known : kPresets) {
    if (known.name != preset) continue;
    if (known.changes == nullptr) return std::string(known.config_json);
    nlohmann::json config = nlohmann::json::parse(known.config_json, nullptr, false);
    config.merge_patch(nlohmann::json::parse(known.changes, nullptr, false));
    return config.dump(2) + "\n";
  }
  return absl::NotFoundError(
      absl::StrCat("unknown synth preset '", preset, "' (known: ", absl::StrJoin(PresetNames(), ", "), ")"));
}

absl::Status SynthesizePreset(absl::string_view preset, const std::string& out_dir, uint64_t seed,
                              const SynthOptions& options) {
  DSRT_ASSIGN_OR_RETURN(const std::string text, PresetConfigJson(preset));
  DSRT_ASSIGN_OR_RETURN(const DeepSeekConfig config,
                        ParseDeepSeekConfig(text, absl::StrCat("preset ", preset, " config.json")));
  return SynthesizeCheckpoint(config, text, out_dir, seed, options);
}

absl::Status SynthesizeCheckpoint(const DeepSeekConfig& config, const std::string& config_json_text,
                                  const std::string& out_dir, uint64_t seed, const SynthOptions& options) {
  const std::vector<TensorSpec> specs = ExpectedTensors(config, options.include_mtp);
  const std::vector<StoredTensor> stored = StoredTensors(config, options.include_mtp);
  DSRT_RETURN_IF_ERROR(CheckConfigTextMatches(config_json_text, stored, options.include_mtp));
  if (options.num_shards < 1 || static_cast<size_t>(options.num_shards) > stored.size()) {
    return absl::InvalidArgumentError(absl::StrCat("synth: cannot split ", stored.size(), " tensors into ",
                                                   options.num_shards, " shards"));
  }
  DSRT_RETURN_IF_ERROR(PrepareOutputDir(out_dir));
  DSRT_RETURN_IF_ERROR(WriteTextFile(absl::StrCat(out_dir, "/config.json"), config_json_text));

  std::map<std::string, const TensorSpec*> spec_by_name;
  for (const TensorSpec& spec : specs) spec_by_name[spec.name] = &spec;
  // Scales of the FP8 weight just written, until its scale_inv entry comes up.
  std::map<std::string, std::vector<float>> pending_scales;

  const std::vector<size_t> starts = ShardStarts(stored, options.num_shards);
  for (int shard = 0; shard < options.num_shards; ++shard) {
    const size_t begin = starts[shard];
    const size_t end = shard + 1 < options.num_shards ? starts[shard + 1] : stored.size();
    std::vector<SafetensorsEntry> entries;
    for (size_t i = begin; i < end; ++i) entries.push_back({stored[i].name, stored[i].dtype, stored[i].shape});
    DSRT_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsWriter> writer,
                          SafetensorsWriter::Create(absl::StrCat(out_dir, "/", ShardFileName(shard, options.num_shards)),
                                                    std::move(entries)));
    for (size_t i = begin; i < end; ++i) {
      auto spec = spec_by_name.find(stored[i].name);
      if (spec == spec_by_name.end()) {  // a scale_inv: its weight came just before
        auto scales = pending_scales.find(stored[i].name);
        if (scales == pending_scales.end()) {
          return absl::InternalError(absl::StrCat("synth: no scales computed for '", stored[i].name, "'"));
        }
        DSRT_RETURN_IF_ERROR(AppendAs(ir::DType::kF32, scales->second, *writer));
        pending_scales.erase(scales);
        continue;
      }
      std::vector<float> scales;
      DSRT_RETURN_IF_ERROR(WriteTensor(*spec->second, stored[i].dtype, config, seed, *writer, scales));
      if (stored[i].dtype == ir::DType::kF8E4M3) pending_scales[ScaleInvName(stored[i].name)] = std::move(scales);
    }
    DSRT_RETURN_IF_ERROR(writer->Close());
  }
  if (options.num_shards == 1) return absl::OkStatus();
  return WriteIndex(out_dir, stored, starts);
}

}  // namespace dsrt::models
