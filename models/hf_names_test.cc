#include "models/hf_names.h"

#include <map>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dsrt::models {
namespace {

DeepSeekConfig GoldenConfig(const std::string& name) {
  absl::StatusOr<DeepSeekConfig> config =
      LoadDeepSeekConfig(std::string(DSRT_REPO_DIR) + "/../shared/golden/" + name);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.value_or(DeepSeekConfig{});
}

const TensorSpec* FindSpec(const std::vector<TensorSpec>& specs, const std::string& name) {
  for (const TensorSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

TEST(HfNamesTest, NameFunctions) {
  EXPECT_EQ(LayerTensor(3, kKvBProj), "model.layers.3.self_attn.kv_b_proj.weight");
  EXPECT_EQ(ExpertTensor(1, 3, kUpProj), "model.layers.1.mlp.experts.3.up_proj.weight");
  EXPECT_EQ(ScaleInvName(ExpertTensor(1, 3, kUpProj)), "model.layers.1.mlp.experts.3.up_proj.weight_scale_inv");
  EXPECT_EQ(LayerTensor(61, kMtpEhProj), "model.layers.61.eh_proj.weight");
}

TEST(HfNamesTest, ScaleInvShapeHasPartialEdgeBlocks) {
  EXPECT_EQ(ScaleInvShape({176, 192}, {128, 128}), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(ScaleInvShape({192, 320}, {128, 128}), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ScaleInvShape({128, 64}, {128, 128}), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(ScaleInvShape({576, 7168}, {128, 128}), (std::vector<int64_t>{5, 56}));
}

TEST(HfNamesTest, TinyV2LiteHasPlainQProjAndSharedExperts) {
  const DeepSeekConfig config = GoldenConfig("tiny-v2-lite");
  const std::vector<TensorSpec> specs = ExpectedTensors(config, /*include_mtp=*/true);
  EXPECT_EQ(specs.size(), 83u);  // CASE.md
  EXPECT_EQ(specs.front().name, kEmbedTokens);
  const TensorSpec* q_proj = FindSpec(specs, "model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q_proj, nullptr);
  EXPECT_EQ(q_proj->shape, (std::vector<int64_t>{4 * 32, 64}));
  EXPECT_EQ(FindSpec(specs, "model.layers.0.self_attn.q_a_proj.weight"), nullptr);
  EXPECT_EQ(FindSpec(specs, "model.layers.1.mlp.gate.e_score_correction_bias"), nullptr);
  EXPECT_NE(FindSpec(specs, "model.layers.0.mlp.gate_proj.weight"), nullptr);
  EXPECT_EQ(FindSpec(specs, "model.layers.0.mlp.gate.weight"), nullptr);
  const TensorSpec* shared = FindSpec(specs, "model.layers.2.mlp.shared_experts.down_proj.weight");
  ASSERT_NE(shared, nullptr);
  EXPECT_EQ(shared->shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(shared->role, TensorRole::kResidualProjection);
  const TensorSpec* expert = FindSpec(specs, "model.layers.2.mlp.experts.7.gate_proj.weight");
  ASSERT_NE(expert, nullptr);
  EXPECT_EQ(expert->expert, 7);
  EXPECT_EQ(expert->layer, 2);
  EXPECT_EQ(specs.back().name, kLmHead);
  for (const StoredTensor& tensor : StoredTensors(config, true)) EXPECT_NE(tensor.dtype, ir::DType::kF8E4M3);
}

TEST(HfNamesTest, TinyV3StoresFp8WeightsWithScales) {
  const DeepSeekConfig config = GoldenConfig("tiny-v3");
  const std::vector<StoredTensor> stored = StoredTensors(config, /*include_mtp=*/true);
  EXPECT_EQ(stored.size(), 383u);  // CASE.md
  std::map<std::string, StoredTensor> by_name;
  for (const StoredTensor& tensor : stored) by_name[tensor.name] = tensor;

  EXPECT_EQ(by_name["model.layers.1.self_attn.kv_a_proj_with_mqa.weight"].dtype, ir::DType::kF8E4M3);
  EXPECT_EQ(by_name["model.layers.1.self_attn.kv_a_proj_with_mqa.weight_scale_inv"].shape,
            (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(by_name["model.layers.0.mlp.down_proj.weight_scale_inv"].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(by_name["model.layers.1.mlp.gate.weight"].dtype, ir::DType::kBF16);
  EXPECT_EQ(by_name["model.layers.1.mlp.gate.e_score_correction_bias"].dtype, ir::DType::kF32);
  EXPECT_EQ(by_name["model.layers.1.input_layernorm.weight"].dtype, ir::DType::kBF16);
  EXPECT_EQ(by_name["lm_head.weight"].dtype, ir::DType::kBF16);
  EXPECT_EQ(by_name["model.layers.3.eh_proj.weight"].dtype, ir::DType::kBF16);
  EXPECT_EQ(by_name["model.layers.3.eh_proj.weight"].shape, (std::vector<int64_t>{192, 384}));
  EXPECT_EQ(by_name["model.layers.3.shared_head.head.weight"].dtype, ir::DType::kBF16);
  EXPECT_EQ(by_name["model.layers.3.mlp.experts.15.down_proj.weight"].dtype, ir::DType::kF8E4M3);
  EXPECT_EQ(by_name.count("model.layers.3.eh_proj.weight_scale_inv"), 0u);

  const std::vector<TensorSpec> specs = ExpectedTensors(config, true);
  const TensorSpec* mtp_embed = FindSpec(specs, "model.layers.3.embed_tokens.weight");
  ASSERT_NE(mtp_embed, nullptr);
  EXPECT_EQ(mtp_embed->copy_of, kEmbedTokens);
  EXPECT_EQ(FindSpec(specs, "model.layers.3.shared_head.head.weight")->copy_of, kLmHead);
  EXPECT_EQ(ExpectedTensors(config, /*include_mtp=*/false).size() + 4 + 2 + 62,
            specs.size());  // MTP: 4 extras, 2 shared_head, a 62-tensor MoE decoder layer
}

TEST(HfNamesTest, NamesAreUnique) {
  for (const char* name : {"tiny-v2-lite", "tiny-v2", "tiny-v3"}) {
    std::set<std::string> names;
    for (const StoredTensor& tensor : StoredTensors(GoldenConfig(name), true)) {
      EXPECT_TRUE(names.insert(tensor.name).second) << tensor.name;
    }
  }
}

TEST(HfNamesTest, TiedEmbeddingsHaveNoLmHead) {
  DeepSeekConfig config = GoldenConfig("tiny-v2");
  config.tie_word_embeddings = true;
  EXPECT_EQ(FindSpec(ExpectedTensors(config, true), std::string(kLmHead)), nullptr);
}

}  // namespace
}  // namespace dsrt::models
