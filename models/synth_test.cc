#include "models/synth.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/test_files.h"
#include "models/checkpoint.h"
#include "models/hf_names.h"

namespace dsrt::models {
namespace {

using testing_files::GoldenDir;
using testing_files::ReadFile;
using testing_files::TestDir;
using testing_files::WriteFile;

using ::testing::HasSubstr;

std::unique_ptr<Checkpoint> SynthAndOpen(const std::string& config_text, const std::string& dir, uint64_t seed,
                                         const SynthOptions& options = {}) {
  absl::StatusOr<DeepSeekConfig> config = ParseDeepSeekConfig(config_text, "config.json");
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  absl::Status status = SynthesizeCheckpoint(*config, config_text, dir, seed, options);
  EXPECT_TRUE(status.ok()) << status;
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir);
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
  return checkpoint.ok() ? *std::move(checkpoint) : nullptr;
}

TEST(F8E4M3Test, EveryCodeRoundTrips) {
  for (int bits = 0; bits < 256; ++bits) {
    const float value = ir::F8E4M3ToF32(static_cast<uint8_t>(bits));
    if (std::isnan(value)) continue;
    EXPECT_EQ(F32ToF8E4M3(value), bits) << bits << " = " << value;
  }
}

TEST(F8E4M3Test, RoundsToNearestEvenAndSaturates) {
  EXPECT_EQ(ir::F8E4M3ToF32(F32ToF8E4M3(1.0625f)), 1.0f);     // halfway 1 | 1.125: even is 1
  EXPECT_EQ(ir::F8E4M3ToF32(F32ToF8E4M3(1.1875f)), 1.25f);    // halfway 1.125 | 1.25: even is 1.25
  EXPECT_EQ(ir::F8E4M3ToF32(F32ToF8E4M3(1.07f)), 1.125f);
  EXPECT_EQ(ir::F8E4M3ToF32(F32ToF8E4M3(-3.3f)), -3.25f);
  EXPECT_EQ(ir::F8E4M3ToF32(F32ToF8E4M3(0x1.0p-10f)), 0.0f);   // halfway 0 | 2^-9: even is 0
  EXPECT_EQ(ir::F8E4M3ToF32(F32ToF8E4M3(0x1.8p-9f)), 0x1.0p-8f);  // halfway 2^-9 | 2^-8: even is 2^-8
  EXPECT_EQ(ir::F8E4M3ToF32(F32ToF8E4M3(0.0153f)), 0x1.0p-6f);  // rounds up out of the subnormals
  EXPECT_EQ(F32ToF8E4M3(447.0f), 0x7e);
  EXPECT_EQ(F32ToF8E4M3(460.0f), 0x7e);
  EXPECT_EQ(F32ToF8E4M3(1e9f), 0x7e);
  EXPECT_EQ(F32ToF8E4M3(-std::numeric_limits<float>::infinity()), 0xfe);
  EXPECT_EQ(F32ToF8E4M3(std::numeric_limits<float>::quiet_NaN()), 0x7f);
  EXPECT_EQ(F32ToF8E4M3(-0.0f), 0x80);
}

TEST(SynthTest, PresetsParse) {
  EXPECT_EQ(PresetNames(), (std::vector<std::string>{"tiny-v2-lite", "tiny-v2", "tiny-v3", "bench-l4", "v2-lite-full", "bench-v3tok", "demo-v3"}));
  for (const std::string& name : PresetNames()) {
    absl::StatusOr<std::string> text = PresetConfigJson(name);
    ASSERT_TRUE(text.ok()) << text.status();
    absl::StatusOr<DeepSeekConfig> config = ParseDeepSeekConfig(*text, name);
    EXPECT_TRUE(config.ok()) << config.status();
  }
  EXPECT_THAT(PresetConfigJson("huge").status().message(), HasSubstr("unknown synth preset 'huge' (known: tiny-v2-lite"));

  for (const char* name : {"tiny-v2-lite", "tiny-v2", "tiny-v3"}) {
    EXPECT_EQ(*PresetConfigJson(name), ReadFile(GoldenDir(name) + "/config.json") + "\n") << name;
  }
  const DeepSeekConfig bench = *ParseDeepSeekConfig(*PresetConfigJson("bench-l4"), "bench-l4");
  EXPECT_EQ(bench.num_hidden_layers, 4);
  EXPECT_EQ(bench.q_lora_rank, 1536);
  EXPECT_FALSE(bench.IsMoeLayer(0));
  EXPECT_TRUE(bench.IsMoeLayer(3));
  const DeepSeekConfig lite = *ParseDeepSeekConfig(*PresetConfigJson("v2-lite-full"), "v2-lite-full");
  EXPECT_EQ(lite.num_hidden_layers, 27);
  EXPECT_FALSE(lite.q_lora_rank.has_value());
  EXPECT_EQ(lite.n_routed_experts, 64);
  EXPECT_EQ(lite.num_experts_per_tok, 6);
  EXPECT_DOUBLE_EQ(lite.rope_scaling->mscale_all_dim, 0.707);
  EXPECT_EQ(lite.rope_scaling->original_max_position_embeddings, 4096);
  int64_t parameters = 0;
  for (const TensorSpec& spec : ExpectedTensors(lite, true)) {
    int64_t count = 1;
    for (int64_t dim : spec.shape) count *= dim;
    parameters += count;
  }
  EXPECT_NEAR(static_cast<double>(parameters), 15.7e9, 0.1e9);  // DeepSeek-V2-Lite: 15.7 B
}

TEST(SynthTest, TinyV3WritesFp8CheckpointThatReadsBack) {
  const std::string dir = TestDir("tiny_v3");
  std::unique_ptr<Checkpoint> checkpoint = SynthAndOpen(*PresetConfigJson("tiny-v3"), dir, 7);
  ASSERT_NE(checkpoint, nullptr);
  EXPECT_EQ(ReadFile(dir + "/config.json"), *PresetConfigJson("tiny-v3"));
  EXPECT_TRUE(checkpoint->CheckTensors(/*include_mtp=*/true).ok()) << checkpoint->CheckTensors(true);
  for (const StoredTensor& expected : StoredTensors(checkpoint->config(), true)) {
    absl::StatusOr<ir::WeightView> raw = checkpoint->Raw(expected.name);
    ASSERT_TRUE(raw.ok()) << raw.status();
    EXPECT_EQ(raw->dtype, expected.dtype) << expected.name;
    EXPECT_EQ(raw->shape, expected.shape) << expected.name;
  }
  EXPECT_EQ(checkpoint->Raw("model.layers.1.mlp.experts.3.up_proj.weight")->dtype, ir::DType::kF8E4M3);
  EXPECT_TRUE(checkpoint->Has("model.layers.1.mlp.experts.3.up_proj.weight_scale_inv"));

  // Dequantization equals the direct computation, and every block uses the full FP8
  // range: its largest code is ±448 (scale = max|block| / 448).
  const std::string name = "model.layers.0.mlp.down_proj.weight";  // [192, 320]: partial blocks both ways
  absl::StatusOr<std::vector<float>> values = checkpoint->LoadF32(name, {192, 320});
  ASSERT_TRUE(values.ok()) << values.status();
  const ir::WeightView codes = *checkpoint->Raw(name);
  const ir::WeightView scales = *checkpoint->Raw(ScaleInvName(name));
  ASSERT_EQ(scales.shape, (std::vector<int64_t>{2, 3}));
  std::vector<float> block_max(6, 0.0f);
  for (int64_t r = 0; r < 192; ++r) {
    for (int64_t c = 0; c < 320; ++c) {
      const float code = ir::F8E4M3ToF32(static_cast<const uint8_t*>(codes.data)[r * 320 + c]);
      float scale;
      std::memcpy(&scale, static_cast<const char*>(scales.data) + 4 * ((r / 128) * 3 + c / 128), 4);
      ASSERT_EQ((*values)[r * 320 + c], code * scale);
      block_max[(r / 128) * 3 + c / 128] = std::max(block_max[(r / 128) * 3 + c / 128], std::fabs(code));
    }
  }
  for (float max : block_max) EXPECT_EQ(max, 448.0f);
}

// Same names, shapes and dtypes as DeepSeek's own golden checkpoints.
TEST(SynthTest, GoldenConfigsGiveTheGoldenTensorLayout) {
  for (const char* name : {"tiny-v2-lite", "tiny-v2", "tiny-v3"}) {
    std::unique_ptr<Checkpoint> golden = Checkpoint::Open(GoldenDir(name)).value_or(nullptr);
    ASSERT_NE(golden, nullptr);
    const std::string dir = TestDir(absl::StrCat("layout_", name));
    std::unique_ptr<Checkpoint> synth = SynthAndOpen(ReadFile(GoldenDir(name) + "/config.json"), dir, 1);
    ASSERT_NE(synth, nullptr);
    ASSERT_EQ(synth->TensorNames(), golden->TensorNames()) << name;
    for (const std::string& tensor : golden->TensorNames()) {
      EXPECT_EQ(synth->Raw(tensor)->dtype, golden->Raw(tensor)->dtype) << name << " " << tensor;
      EXPECT_EQ(synth->Raw(tensor)->shape, golden->Raw(tensor)->shape) << name << " " << tensor;
    }
  }
}

TEST(SynthTest, DeterministicPerSeedAndIndependentOfSharding) {
  const std::string text = *PresetConfigJson("tiny-v2");
  const std::string one_dir = TestDir("seed_a");
  const std::string again_dir = TestDir("seed_b");
  std::unique_ptr<Checkpoint> one = SynthAndOpen(text, one_dir, 42);
  std::unique_ptr<Checkpoint> again = SynthAndOpen(text, again_dir, 42);
  const std::string sharded_dir = TestDir("seed_sharded");
  std::unique_ptr<Checkpoint> sharded = SynthAndOpen(text, sharded_dir, 42, {.num_shards = 3});
  std::unique_ptr<Checkpoint> other = SynthAndOpen(text, TestDir("seed_c"), 43);
  ASSERT_NE(one, nullptr);
  ASSERT_NE(again, nullptr);
  ASSERT_NE(sharded, nullptr);
  ASSERT_NE(other, nullptr);
  EXPECT_TRUE(std::filesystem::exists(sharded_dir + "/model-00003-of-00003.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(sharded_dir + "/model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(sharded_dir + "/model.safetensors"));
  const std::string one_bytes = ReadFile(one_dir + "/model.safetensors");
  EXPECT_GT(one_bytes.size(), 1000000u);
  EXPECT_EQ(one_bytes, ReadFile(again_dir + "/model.safetensors"));
  ASSERT_EQ(sharded->TensorNames(), one->TensorNames());
  for (const std::string& name : one->TensorNames()) {
    const ir::WeightView a = *one->Raw(name);
    const ir::WeightView b = *sharded->Raw(name);
    ASSERT_EQ(a.bytes, b.bytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.bytes), 0) << name;
  }
  const ir::WeightView a = *one->Raw("lm_head.weight");
  const ir::WeightView c = *other->Raw("lm_head.weight");
  EXPECT_NE(std::memcmp(a.data, c.data, a.bytes), 0);

  // Re-synthesizing unsharded into the sharded directory replaces the shards.
  sharded.reset();
  std::unique_ptr<Checkpoint> resynth = SynthAndOpen(text, sharded_dir, 42);
  ASSERT_NE(resynth, nullptr);
  EXPECT_FALSE(std::filesystem::exists(sharded_dir + "/model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(sharded_dir + "/model-00001-of-00003.safetensors"));
}

TEST(SynthTest, MtpCopiesEqualTheirOriginals) {
  std::unique_ptr<Checkpoint> checkpoint = SynthAndOpen(*PresetConfigJson("tiny-v3"), TestDir("mtp"), 3);
  ASSERT_NE(checkpoint, nullptr);
  for (const auto& [copy, original] : {std::pair<std::string, std::string>{"model.layers.3.embed_tokens.weight",
                                                                           std::string(kEmbedTokens)},
                                       {"model.layers.3.shared_head.head.weight", std::string(kLmHead)}}) {
    const ir::WeightView a = *checkpoint->Raw(copy);
    const ir::WeightView b = *checkpoint->Raw(original);
    ASSERT_EQ(a.bytes, b.bytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.bytes), 0) << copy;
  }
  std::unique_ptr<Checkpoint> without = SynthAndOpen(*PresetConfigJson("tiny-v3"), TestDir("no_mtp"), 3,
                                                     {.include_mtp = false});
  ASSERT_NE(without, nullptr);
  EXPECT_FALSE(without->Has("model.layers.3.eh_proj.weight"));
  EXPECT_TRUE(without->CheckTensors(false).ok());
}

struct Moments {
  double mean = 0;
  double stddev = 0;
  double max_abs = 0;
};

Moments MomentsOf(const std::vector<float>& values) {
  Moments moments;
  double sum = 0, sum_squares = 0;
  for (float value : values) {
    sum += value;
    sum_squares += static_cast<double>(value) * value;
    moments.max_abs = std::max(moments.max_abs, static_cast<double>(std::fabs(value)));
  }
  moments.mean = sum / values.size();
  moments.stddev = std::sqrt(sum_squares / values.size() - moments.mean * moments.mean);
  return moments;
}

TEST(SynthTest, InitializationHasTheDocumentedScales) {
  std::unique_ptr<Checkpoint> checkpoint = SynthAndOpen(*PresetConfigJson("tiny-v2-lite"), TestDir("init"), 5);
  ASSERT_NE(checkpoint, nullptr);
  const Moments embed = MomentsOf(*checkpoint->LoadF32(std::string(kEmbedTokens), {512, 64}));
  EXPECT_NEAR(embed.mean, 0.0, 0.02);
  EXPECT_NEAR(embed.stddev, 1.0, 0.02);
  const Moments up = MomentsOf(*checkpoint->LoadF32("model.layers.0.mlp.up_proj.weight", {160, 64}));
  EXPECT_NEAR(up.stddev * std::sqrt(64.0), 1.0, 0.05);
  // 3 layers: residual projections scaled by sqrt(2 / 3).
  const Moments down = MomentsOf(*checkpoint->LoadF32("model.layers.0.mlp.down_proj.weight", {64, 160}));
  EXPECT_NEAR(down.stddev * std::sqrt(160.0), std::sqrt(2.0 / 3.0), 0.05);
  const Moments norm = MomentsOf(*checkpoint->LoadF32("model.layers.1.input_layernorm.weight", {64}));
  EXPECT_NEAR(norm.mean, 1.0, 0.05);
  EXPECT_NEAR(norm.stddev, 0.1, 0.04);
  const Moments head = MomentsOf(*checkpoint->LoadF32(std::string(kLmHead), {512, 64}));
  EXPECT_NEAR(head.stddev * std::sqrt(64.0), 1.0, 0.05);

  std::unique_ptr<Checkpoint> v3 = SynthAndOpen(*PresetConfigJson("tiny-v3"), TestDir("init_v3"), 5);
  ASSERT_NE(v3, nullptr);
  const Moments bias = MomentsOf(*v3->LoadF32("model.layers.2.mlp.gate.e_score_correction_bias", {16}));
  EXPECT_LE(bias.max_abs, 0.1);
  EXPECT_GT(bias.stddev, 0.01);
  const Moments expert = MomentsOf(*v3->LoadF32("model.layers.2.mlp.experts.9.gate_proj.weight", {64, 192}));
  EXPECT_NEAR(expert.stddev * std::sqrt(192.0), 1.0, 0.08);
}

TEST(SynthTest, BadOptionsAreErrors) {
  const std::string text = *PresetConfigJson("tiny-v2-lite");
  const DeepSeekConfig config = *ParseDeepSeekConfig(text, "tiny-v2-lite");
  EXPECT_THAT(SynthesizeCheckpoint(config, text, TestDir("bad"), 1, {.num_shards = 0}).message(),
              HasSubstr("cannot split"));
  EXPECT_THAT(SynthesizeCheckpoint(config, text, TestDir("bad"), 1, {.num_shards = 100000}).message(),
              HasSubstr("cannot split"));
  EXPECT_THAT(SynthesizePreset("nope", TestDir("bad"), 1).message(), HasSubstr("unknown synth preset"));
  EXPECT_FALSE(SynthesizeCheckpoint(config, text, "/proc/forbidden/dir", 1).ok());
  EXPECT_THAT(SynthesizeCheckpoint(config, *PresetConfigJson("tiny-v2"), TestDir("bad"), 1).message(),
              HasSubstr("describes other tensors"));
  EXPECT_THAT(SynthesizeCheckpoint(config, "{", TestDir("bad"), 1).message(), HasSubstr("not valid JSON"));
}

}  // namespace
}  // namespace dsrt::models
