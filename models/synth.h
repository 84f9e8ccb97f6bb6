#ifndef DSRT_MODELS_SYNTH_H_
#define DSRT_MODELS_SYNTH_H_

// `dsrt synth`: random-weight DeepSeek checkpoints in real Hugging Face format, for
// tests and benchmarks of models nobody has to download.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/config.h"

namespace dsrt::models {

struct SynthOptions {
  // 1: model.safetensors. N > 1: model-0000K-of-0000N.safetensors and
  // model.safetensors.index.json, split by bytes.
  int num_shards = 1;
  // Write the MTP layers' tensors when the config has num_nextn_predict_layers > 0.
  bool include_mtp = true;
};

// Writes `config_json_text` (which must parse to `config`) as out_dir/config.json and
// random weights for every tensor of ExpectedTensors(config): BF16, or F8_E4M3 with F32
// per-block weight_scale_inv (scale = max|block| / 448) for the quantized weights when
// the config has quantization_config; e_score_correction_bias in F32. Values are
// deterministic per seed and independent of sharding. Streams: holds one row block of
// one tensor at a time, so 15 B-parameter presets need little memory. Replaces a
// previous synth's model*.safetensors files in out_dir.
//
// Initialization keeps activations realistic at any depth: weights ~ N(0, 1/fan_in)
// (o_proj and down_proj scaled by sqrt(2 / num_hidden_layers) when that is < 1),
// embeddings ~ N(0, 1), norms 1 + N(0, 0.1²), router bias U(-0.1, 0.1). Logits come
// out with a standard deviation near 1.
absl::Status SynthesizeCheckpoint(const DeepSeekConfig& config, const std::string& config_json_text,
                                  const std::string& out_dir, uint64_t seed, const SynthOptions& options = {});

// The config.json text of a preset: tiny-v2-lite, tiny-v2, tiny-v3 (the golden cases'
// configs), bench-l4 (V2-Lite-sized layers, q LoRA, 4 layers) and v2-lite-full
// (DeepSeek-V2-Lite's own config).
absl::StatusOr<std::string> PresetConfigJson(absl::string_view preset);
std::vector<std::string> PresetNames();
// Parses the preset's config and synthesizes it.
absl::Status SynthesizePreset(absl::string_view preset, const std::string& out_dir, uint64_t seed,
                              const SynthOptions& options = {});

// float → FP8 E4M3 (e4m3fn) bits: round to nearest even, saturating to ±448; NaN → 0x7f.
uint8_t F32ToF8E4M3(float value);

}  // namespace dsrt::models

#endif  // DSRT_MODELS_SYNTH_H_
