#include "models/config.h"

#include <string>

#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/test_files.h"

namespace dsrt::models {
namespace {

using testing_files::GoldenDir;
using testing_files::ReadFile;
using testing_files::TestDir;
using testing_files::WriteFile;

using ::testing::HasSubstr;

// The smallest config that parses: the keys without HF defaults worth trusting.
constexpr char kMinimalV2[] = R"json({
  "model_type": "deepseek_v2",
  "vocab_size": 512, "hidden_size": 64, "intermediate_size": 160,
  "num_hidden_layers": 2, "num_attention_heads": 4
})json";

std::string Replace(absl::string_view text, absl::string_view from, absl::string_view to) {
  return absl::StrReplaceAll(text, {{from, to}});
}

absl::Status ParseError(absl::string_view text) { return ParseDeepSeekConfig(text, "test/config.json").status(); }

TEST(ConfigTest, GoldenTinyV2LiteParses) {
  absl::StatusOr<DeepSeekConfig> config = LoadDeepSeekConfig(GoldenDir("tiny-v2-lite"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model_type, "deepseek_v2");
  EXPECT_EQ(config->vocab_size, 512);
  EXPECT_EQ(config->hidden_size, 64);
  EXPECT_EQ(config->intermediate_size, 160);
  EXPECT_EQ(config->moe_intermediate_size, 32);
  EXPECT_EQ(config->num_hidden_layers, 3);
  EXPECT_EQ(config->num_attention_heads, 4);
  EXPECT_FALSE(config->q_lora_rank.has_value());
  EXPECT_EQ(config->kv_lora_rank, 32);
  EXPECT_EQ(config->qk_rope_head_dim, 16);
  EXPECT_EQ(config->qk_nope_head_dim, 16);
  EXPECT_EQ(config->v_head_dim, 16);
  EXPECT_EQ(config->n_shared_experts, 2);
  EXPECT_EQ(config->n_routed_experts, 8);
  EXPECT_EQ(config->num_experts_per_tok, 3);
  EXPECT_EQ(config->topk_method, TopkMethod::kGreedy);
  EXPECT_EQ(config->scoring_func, ScoringFunc::kSoftmax);
  EXPECT_FALSE(config->norm_topk_prob);
  EXPECT_DOUBLE_EQ(config->routed_scaling_factor, 1.0);
  EXPECT_EQ(config->first_k_dense_replace, 1);
  ASSERT_TRUE(config->rope_scaling.has_value());
  EXPECT_EQ(config->rope_scaling->type, "yarn");
  EXPECT_DOUBLE_EQ(config->rope_scaling->factor, 40.0);
  EXPECT_EQ(config->rope_scaling->original_max_position_embeddings, 32);
  EXPECT_DOUBLE_EQ(config->rope_scaling->beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(config->rope_scaling->beta_slow, 1.0);
  EXPECT_DOUBLE_EQ(config->rope_scaling->mscale, 0.707);
  EXPECT_DOUBLE_EQ(config->rope_scaling->mscale_all_dim, 0.707);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-6);
  EXPECT_EQ(config->num_nextn_predict_layers, 0);
  EXPECT_FALSE(config->fp8_block_size.has_value());
  EXPECT_EQ(config->bos_token_id, 0);
  EXPECT_EQ(config->eos_token_id, 1);
  EXPECT_FALSE(config->IsMoeLayer(0));
  EXPECT_TRUE(config->IsMoeLayer(1));
  EXPECT_TRUE(config->IsMoeLayer(2));
  EXPECT_EQ(config->shared_experts_intermediate_size(), 64);
}

TEST(ConfigTest, GoldenTinyV2Parses) {
  absl::StatusOr<DeepSeekConfig> config = LoadDeepSeekConfig(GoldenDir("tiny-v2"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->q_lora_rank, 48);
  EXPECT_EQ(config->num_attention_heads, 6);
  EXPECT_EQ(config->v_head_dim, 24);
  EXPECT_EQ(config->topk_method, TopkMethod::kGroupLimitedGreedy);
  EXPECT_EQ(config->n_group, 4);
  EXPECT_EQ(config->topk_group, 2);
  EXPECT_EQ(config->num_experts_per_tok, 4);
  EXPECT_DOUBLE_EQ(config->routed_scaling_factor, 16.0);
  EXPECT_DOUBLE_EQ(config->rope_scaling->mscale_all_dim, 1.0);
}

TEST(ConfigTest, GoldenTinyV3Parses) {
  absl::StatusOr<DeepSeekConfig> config = LoadDeepSeekConfig(GoldenDir("tiny-v3"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model_type, "deepseek_v3");
  EXPECT_EQ(config->hidden_size, 192);
  EXPECT_EQ(config->q_lora_rank, 160);
  EXPECT_EQ(config->kv_lora_rank, 144);
  EXPECT_EQ(config->topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(config->scoring_func, ScoringFunc::kSigmoid);
  EXPECT_TRUE(config->norm_topk_prob);
  EXPECT_DOUBLE_EQ(config->routed_scaling_factor, 2.5);
  EXPECT_EQ(config->num_nextn_predict_layers, 1);
  ASSERT_TRUE(config->fp8_block_size.has_value());
  EXPECT_EQ(*config->fp8_block_size, (std::pair<int64_t, int64_t>{128, 128}));
  EXPECT_EQ(config->rope_scaling->original_max_position_embeddings, 16);
  EXPECT_TRUE(config->IsMoeLayer(3));  // the MTP layer
}

TEST(ConfigTest, AbsentKeysTakeHuggingFaceV2Defaults) {
  absl::StatusOr<DeepSeekConfig> config = ParseDeepSeekConfig(kMinimalV2, "test/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->q_lora_rank, 1536);
  EXPECT_EQ(config->kv_lora_rank, 512);
  EXPECT_EQ(config->qk_rope_head_dim, 64);
  EXPECT_EQ(config->qk_nope_head_dim, 128);
  EXPECT_EQ(config->v_head_dim, 128);
  EXPECT_EQ(config->num_key_value_heads, 4);
  EXPECT_EQ(config->n_routed_experts, 0);
  EXPECT_EQ(config->topk_method, TopkMethod::kGreedy);
  EXPECT_FALSE(config->rope_scaling.has_value());
  EXPECT_EQ(config->bos_token_id, 100000);
  EXPECT_EQ(config->max_position_embeddings, 2048);
  EXPECT_FALSE(config->IsMoeLayer(1));
}

TEST(ConfigTest, AbsentKeysTakeHuggingFaceV3Defaults) {
  const std::string text = Replace(kMinimalV2, "deepseek_v2", "deepseek_v3");
  absl::StatusOr<DeepSeekConfig> config = ParseDeepSeekConfig(text, "test/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->n_routed_experts, 256);
  EXPECT_EQ(config->num_experts_per_tok, 8);
  EXPECT_EQ(config->n_group, 8);
  EXPECT_EQ(config->topk_group, 4);
  EXPECT_EQ(config->topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(config->scoring_func, ScoringFunc::kSigmoid);
  EXPECT_TRUE(config->norm_topk_prob);
  EXPECT_DOUBLE_EQ(config->routed_scaling_factor, 2.5);
  EXPECT_EQ(config->first_k_dense_replace, 3);
  EXPECT_EQ(config->num_nextn_predict_layers, 1);
  EXPECT_EQ(config->moe_intermediate_size, 2048);
}

TEST(ConfigTest, GreadyMeansGreedy) {
  const std::string text = Replace(kMinimalV2, R"("num_attention_heads": 4)",
                                   R"("num_attention_heads": 4, "topk_method": "gready")");
  absl::StatusOr<DeepSeekConfig> config = ParseDeepSeekConfig(text, "test/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->topk_method, TopkMethod::kGreedy);
}

TEST(ConfigTest, NullsMeanHuggingFaceNone) {
  const std::string text = Replace(kMinimalV2, R"("num_attention_heads": 4)",
                                   R"("num_attention_heads": 4, "q_lora_rank": null, "n_shared_experts": null,
                                      "n_routed_experts": null, "rope_scaling": null, "num_key_value_heads": null)");
  absl::StatusOr<DeepSeekConfig> config = ParseDeepSeekConfig(text, "test/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->q_lora_rank.has_value());
  EXPECT_EQ(config->n_shared_experts, 0);
  EXPECT_EQ(config->n_routed_experts, 0);
  EXPECT_FALSE(config->rope_scaling.has_value());
  EXPECT_EQ(config->num_key_value_heads, 4);
}

TEST(ConfigTest, RopeTypeKeyIsAcceptedToo) {
  const std::string text = Replace(kMinimalV2, R"("num_attention_heads": 4)",
                                   R"("num_attention_heads": 4, "rope_scaling": {"rope_type": "yarn", "factor": 4})");
  absl::StatusOr<DeepSeekConfig> config = ParseDeepSeekConfig(text, "test/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_DOUBLE_EQ(config->rope_scaling->factor, 4.0);
  EXPECT_EQ(config->rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(config->rope_scaling->mscale_all_dim, 0.0);
}

TEST(ConfigTest, MoeLayerFrequencyFollowsHuggingFace) {
  const std::string text = Replace(kMinimalV2, R"("num_hidden_layers": 2)",
                                   R"("num_hidden_layers": 6, "n_routed_experts": 4, "num_experts_per_tok": 2,
                                      "moe_layer_freq": 2, "first_k_dense_replace": 1)");
  absl::StatusOr<DeepSeekConfig> config = ParseDeepSeekConfig(text, "test/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->IsMoeLayer(0));
  EXPECT_FALSE(config->IsMoeLayer(1));
  EXPECT_TRUE(config->IsMoeLayer(2));
  EXPECT_FALSE(config->IsMoeLayer(3));
  EXPECT_TRUE(config->IsMoeLayer(4));
}

TEST(ConfigTest, UnknownModelTypeIsAnError) {
  absl::Status status = ParseError(Replace(kMinimalV2, "deepseek_v2", "llama"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("test/config.json"));
  EXPECT_THAT(status.message(), HasSubstr("model_type"));
  EXPECT_THAT(status.message(), HasSubstr("'llama'"));
}

TEST(ConfigTest, MissingRequiredKeyIsAnError) {
  absl::Status status = ParseError(Replace(kMinimalV2, R"("hidden_size": 64,)", ""));
  EXPECT_THAT(status.message(), HasSubstr("test/config.json"));
  EXPECT_THAT(status.message(), HasSubstr("'hidden_size' is missing"));
  EXPECT_THAT(ParseError(R"({"vocab_size": 5})").message(), HasSubstr("'model_type' is missing"));
}

TEST(ConfigTest, WrongValueTypeIsAnError) {
  absl::Status status = ParseError(Replace(kMinimalV2, R"("hidden_size": 64)", R"("hidden_size": "64")"));
  EXPECT_THAT(status.message(), HasSubstr("'hidden_size' must be an integer, got string"));
  status = ParseError(Replace(kMinimalV2, R"("hidden_size": 64)", R"("hidden_size": 64.5)"));
  EXPECT_THAT(status.message(), HasSubstr("'hidden_size' must be an integer"));
  status = ParseError(Replace(kMinimalV2, R"("hidden_size": 64)", R"("hidden_size": 64, "rms_norm_eps": "x")"));
  EXPECT_THAT(status.message(), HasSubstr("'rms_norm_eps' must be a number"));
  status = ParseError(Replace(kMinimalV2, R"("hidden_size": 64)", R"("hidden_size": 64, "norm_topk_prob": 1)"));
  EXPECT_THAT(status.message(), HasSubstr("'norm_topk_prob' must be true or false"));
  status = ParseError(Replace(kMinimalV2, R"("hidden_size": 64)", R"("hidden_size": 64, "rope_scaling": 3)"));
  EXPECT_THAT(status.message(), HasSubstr("'rope_scaling' must be null or an object"));
}

TEST(ConfigTest, IntegralFloatsAreIntegers) {
  absl::StatusOr<DeepSeekConfig> config =
      ParseDeepSeekConfig(Replace(kMinimalV2, R"("hidden_size": 64)", R"("hidden_size": 64.0)"), "c");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->hidden_size, 64);
}

TEST(ConfigTest, GroupCountMustDivideExperts) {
  const std::string text = Replace(kMinimalV2, R"("num_attention_heads": 4)",
                                   R"("num_attention_heads": 4, "n_routed_experts": 10, "num_experts_per_tok": 2,
                                      "n_group": 4, "topk_group": 2, "topk_method": "group_limited_greedy")");
  absl::Status status = ParseError(text);
  EXPECT_THAT(status.message(), HasSubstr("test/config.json"));
  EXPECT_THAT(status.message(), HasSubstr("'n_group' (4) must divide n_routed_experts (10)"));
}

TEST(ConfigTest, InconsistentRoutingIsAnError) {
  const std::string base = Replace(kMinimalV2, R"("num_attention_heads": 4)",
                                   R"("num_attention_heads": 4, "n_routed_experts": 8, EXTRA)");
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("num_experts_per_tok": 9)")).message(),
              HasSubstr("'num_experts_per_tok' must be between 1 and n_routed_experts (8)"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("num_experts_per_tok": 2)")).ok(), true);
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("num_experts_per_tok": 2, "n_group": 2, "topk_group": 3)")).message(),
              HasSubstr("'topk_group' (3) must be between 1 and n_group (2)"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA",
                                 R"("num_experts_per_tok": 5, "n_group": 4, "topk_group": 2,
                                    "topk_method": "group_limited_greedy")"))
                  .message(),
              HasSubstr("'num_experts_per_tok' (5) exceeds"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("num_experts_per_tok": 2, "n_group": 8, "topk_group": 2,
                                                   "topk_method": "noaux_tc")"))
                  .message(),
              HasSubstr("'n_group'"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("num_experts_per_tok": 2, "topk_method": "best")")).message(),
              HasSubstr("'topk_method' names an unsupported method 'best'"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("num_experts_per_tok": 2, "scoring_func": "relu")")).message(),
              HasSubstr("'scoring_func' names an unsupported function 'relu'"));
}

TEST(ConfigTest, OtherInvalidValuesAreErrors) {
  const std::string base = Replace(kMinimalV2, R"("num_attention_heads": 4)", R"("num_attention_heads": 4, EXTRA)");
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("qk_rope_head_dim": 7)")).message(),
              HasSubstr("'qk_rope_head_dim' must be even"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("hidden_act": "gelu")")).message(),
              HasSubstr("'hidden_act' names an unsupported activation 'gelu'"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("kv_lora_rank": 0)")).message(),
              HasSubstr("'kv_lora_rank' must be positive"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("rope_scaling": {"type": "linear", "factor": 2})")).message(),
              HasSubstr("'rope_scaling.type' is 'linear'; only 'yarn' is supported"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("rope_scaling": {"type": "yarn"})")).message(),
              HasSubstr("'rope_scaling.factor' is missing"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("rope_scaling": {"type": "yarn", "factor": "x"})")).message(),
              HasSubstr("'rope_scaling.factor' must be a number"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA", R"("quantization_config": {"quant_method": "gptq"})")).message(),
              HasSubstr("quant_method 'gptq'"));
  EXPECT_THAT(ParseError(Replace(base, "EXTRA",
                                 R"("quantization_config": {"quant_method": "fp8", "weight_block_size": [128]})"))
                  .message(),
              HasSubstr("weight_block_size"));
  EXPECT_THAT(ParseError("{not json").message(), HasSubstr("test/config.json: not valid JSON"));
  EXPECT_THAT(ParseError("[1, 2]").message(), HasSubstr("not a JSON object"));
}

TEST(ConfigTest, MissingFileIsAnError) {
  absl::StatusOr<DeepSeekConfig> config = LoadDeepSeekConfig("/nonexistent/dir");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr("/nonexistent/dir/config.json"));
}

}  // namespace
}  // namespace dsrt::models
