#include "models/checkpoint.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/test_files.h"
#include "models/hf_names.h"
#include "models/safetensors_writer.h"

namespace dsrt::models {
namespace {

using testing_files::GoldenDir;
using testing_files::ReadFile;
using testing_files::TestDir;
using testing_files::WriteFile;

using ::testing::HasSubstr;

template <typename T>
std::string Bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A checkpoint directory with the golden tiny-v3 config (FP8, 128×128 blocks) and `tensors`.
std::string MakeCheckpoint(const std::string& name, const std::vector<SafetensorsBlob>& tensors) {
  const std::string dir = TestDir(name);
  WriteFile(dir + "/config.json", ReadFile(GoldenDir("tiny-v3") + "/config.json"));
  EXPECT_TRUE(WriteSafetensorsFile(dir + "/model.safetensors", tensors).ok());
  return dir;
}

std::unique_ptr<Checkpoint> OpenOrDie(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir);
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
  return checkpoint.ok() ? *std::move(checkpoint) : nullptr;
}

TEST(CheckpointTest, GoldenCheckpointsHaveEveryExpectedTensor) {
  for (const char* name : {"tiny-v2-lite", "tiny-v2", "tiny-v3"}) {
    std::unique_ptr<Checkpoint> checkpoint = OpenOrDie(GoldenDir(name));
    ASSERT_NE(checkpoint, nullptr);
    EXPECT_TRUE(checkpoint->CheckTensors(/*include_mtp=*/true).ok()) << checkpoint->CheckTensors(true);
    EXPECT_EQ(checkpoint->TensorNames().size(), StoredTensors(checkpoint->config(), true).size()) << name;
  }
}

TEST(CheckpointTest, ShardedGoldenOpensThroughItsIndex) {
  std::unique_ptr<Checkpoint> checkpoint = OpenOrDie(GoldenDir("tiny-v2"));
  ASSERT_NE(checkpoint, nullptr);
  EXPECT_EQ(checkpoint->dir(), GoldenDir("tiny-v2"));
  EXPECT_EQ(checkpoint->TensorNames().size(), 137u);
  EXPECT_TRUE(checkpoint->Has("model.embed_tokens.weight"));
  EXPECT_TRUE(checkpoint->Has("lm_head.weight"));
  EXPECT_EQ(checkpoint->config().q_lora_rank, 48);
  absl::StatusOr<std::vector<float>> head = checkpoint->LoadF32("lm_head.weight", {768, 96});
  ASSERT_TRUE(head.ok()) << head.status();
  absl::StatusOr<std::vector<uint16_t>> head_bf16 = checkpoint->LoadBF16("lm_head.weight", {768, 96});
  ASSERT_TRUE(head_bf16.ok()) << head_bf16.status();
  absl::StatusOr<ir::WeightView> raw = checkpoint->Raw("lm_head.weight");
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(std::memcmp(raw->data, head_bf16->data(), raw->bytes), 0);  // exact from BF16
  for (size_t i = 0; i < head->size(); ++i) ASSERT_EQ((*head)[i], ir::BF16ToF32((*head_bf16)[i]));
}

// Dequantizes element (r, c) of a golden FP8 weight the obvious way.
float DirectDequant(const Checkpoint& checkpoint, const std::string& name, int64_t r, int64_t c) {
  const ir::WeightView weight = *checkpoint.Raw(name);
  const ir::WeightView scale = *checkpoint.Raw(ScaleInvName(name));
  const uint8_t code = static_cast<const uint8_t*>(weight.data)[r * weight.shape[1] + c];
  float s;
  std::memcpy(&s, static_cast<const char*>(scale.data) + 4 * ((r / 128) * scale.shape[1] + c / 128), 4);
  return ir::F8E4M3ToF32(code) * s;
}

TEST(CheckpointTest, GoldenFp8WeightsDequantizeWithPartialEdgeBlocks) {
  std::unique_ptr<Checkpoint> checkpoint = OpenOrDie(GoldenDir("tiny-v3"));
  ASSERT_NE(checkpoint, nullptr);
  const std::pair<std::string, std::vector<int64_t>> weights[] = {
      {"model.layers.1.self_attn.kv_a_proj_with_mqa.weight", {176, 192}},
      {"model.layers.0.mlp.down_proj.weight", {192, 320}},
      {"model.layers.0.mlp.gate_proj.weight", {320, 192}},
      {"model.layers.2.mlp.experts.3.up_proj.weight", {64, 192}},
      {"model.layers.2.self_attn.o_proj.weight", {192, 128}},
  };
  for (const auto& [name, shape] : weights) {
    absl::StatusOr<std::vector<float>> values = checkpoint->LoadF32(name, shape);
    ASSERT_TRUE(values.ok()) << values.status();
    ASSERT_EQ(values->size(), static_cast<size_t>(shape[0] * shape[1]));
    double sum_squares = 0;
    for (int64_t r = 0; r < shape[0]; ++r) {
      for (int64_t c = 0; c < shape[1]; ++c) {
        const float value = (*values)[r * shape[1] + c];
        ASSERT_EQ(value, DirectDequant(*checkpoint, name, r, c)) << name << " at " << r << ", " << c;
        sum_squares += value * value;
      }
    }
    // Golden weights are ~N(0, 1/in): a wrong block mapping would not keep that.
    const double stddev = std::sqrt(sum_squares / (shape[0] * shape[1]));
    EXPECT_NEAR(stddev * std::sqrt(static_cast<double>(shape[1])), 1.0, 0.1) << name;
    absl::StatusOr<std::vector<uint16_t>> bf16 = checkpoint->LoadBF16(name, shape);
    ASSERT_TRUE(bf16.ok());
    EXPECT_EQ((*bf16)[7], ir::F32ToBF16((*values)[7]));
  }
  absl::StatusOr<std::vector<float>> bias = checkpoint->LoadF32("model.layers.1.mlp.gate.e_score_correction_bias", {16});
  ASSERT_TRUE(bias.ok()) << bias.status();
}

TEST(CheckpointTest, MissingTensorNamesTheCheckpoint) {
  std::unique_ptr<Checkpoint> checkpoint = OpenOrDie(GoldenDir("tiny-v2-lite"));
  ASSERT_NE(checkpoint, nullptr);
  absl::Status status = checkpoint->LoadF32("model.layers.9.mlp.up_proj.weight", {1}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            absl::StrCat("checkpoint ", GoldenDir("tiny-v2-lite"), ": tensor 'model.layers.9.mlp.up_proj.weight' is missing"));
  EXPECT_FALSE(checkpoint->Has("model.layers.9.mlp.up_proj.weight"));
  EXPECT_FALSE(checkpoint->Raw("nope").ok());
}

TEST(CheckpointTest, WrongShapeNamesTensorAndBothShapes) {
  std::unique_ptr<Checkpoint> checkpoint = OpenOrDie(GoldenDir("tiny-v2-lite"));
  ASSERT_NE(checkpoint, nullptr);
  absl::Status status = checkpoint->LoadF32("lm_head.weight", {64, 512}).status();
  EXPECT_THAT(status.message(), HasSubstr("tensor 'lm_head.weight' has shape [512, 64], expected [64, 512]"));
  EXPECT_THAT(checkpoint->LoadBF16("lm_head.weight", {512}).status().message(), HasSubstr("expected [512]"));
}

TEST(CheckpointTest, NonFiniteValuesAreErrors) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::string dir = MakeCheckpoint(
      "nonfinite", {
                       {{"f32.weight", ir::DType::kF32, {2, 2}}, Bytes(std::vector<float>{1, 2, nan, 4})},
                       {{"bias", ir::DType::kF32, {3}}, Bytes(std::vector<float>{0.1f, inf, 0})},
                       {{"bf16.weight", ir::DType::kBF16, {3}}, Bytes(std::vector<uint16_t>{0x3f80, 0x3f80, 0x7f80})},
                       {{"f16.weight", ir::DType::kF16, {2}}, Bytes(std::vector<uint16_t>{0x3c00, 0x7e00})},
                       {{"fp8.weight", ir::DType::kF8E4M3, {2, 2}}, std::string("\x38\x38\x38\x7f", 4)},
                       {{"fp8.weight_scale_inv", ir::DType::kF32, {1, 1}}, Bytes(std::vector<float>{0.5f})},
                       {{"badscale.weight", ir::DType::kF8E4M3, {1, 2}}, std::string("\x38\x38", 2)},
                       {{"badscale.weight_scale_inv", ir::DType::kF32, {1, 1}}, Bytes(std::vector<float>{nan})},
                   });
  std::unique_ptr<Checkpoint> checkpoint = OpenOrDie(dir);
  ASSERT_NE(checkpoint, nullptr);
  EXPECT_THAT(checkpoint->LoadF32("f32.weight", {2, 2}).status().message(),
              HasSubstr("tensor 'f32.weight' has a non-finite value at index 2"));
  EXPECT_THAT(checkpoint->LoadF32("bias", {3}).status().message(),
              HasSubstr("tensor 'bias' has a non-finite value at index 1"));
  EXPECT_THAT(checkpoint->LoadF32("bf16.weight", {3}).status().message(),
              HasSubstr("tensor 'bf16.weight' has a non-finite value at index 2"));
  EXPECT_THAT(checkpoint->LoadBF16("bf16.weight", {3}).status().message(),
              HasSubstr("tensor 'bf16.weight' has a non-finite value at index 2"));
  EXPECT_THAT(checkpoint->LoadF32("f16.weight", {2}).status().message(),
              HasSubstr("tensor 'f16.weight' has a non-finite value at index 1"));
  EXPECT_THAT(checkpoint->LoadF32("fp8.weight", {2, 2}).status().message(),
              HasSubstr("tensor 'fp8.weight' has a non-finite value at index 3"));
  EXPECT_THAT(checkpoint->LoadF32("badscale.weight", {1, 2}).status().message(),
              HasSubstr("tensor 'badscale.weight_scale_inv' has a non-finite value at index 0"));
  EXPECT_THAT(checkpoint->LoadF32("bias", {3}).status().message(), HasSubstr(absl::StrCat("checkpoint ", dir)));
}

TEST(CheckpointTest, Fp8ScaleProblemsAreErrors) {
  const std::string dir = MakeCheckpoint(
      "scales", {
                    {{"noscale.weight", ir::DType::kF8E4M3, {2, 2}}, std::string(4, '\x38')},
                    {{"wrongscale.weight", ir::DType::kF8E4M3, {130, 2}}, std::string(260, '\x38')},
                    {{"wrongscale.weight_scale_inv", ir::DType::kF32, {1, 1}}, Bytes(std::vector<float>{1})},
                    {{"good.weight", ir::DType::kF8E4M3, {130, 2}}, std::string(260, '\x38')},  // 1.0
                    {{"good.weight_scale_inv", ir::DType::kF32, {2, 1}}, Bytes(std::vector<float>{0.5f, 4.0f})},
                    {{"ints", ir::DType::kI32, {2}}, Bytes(std::vector<int32_t>{1, 2})},
                });
  std::unique_ptr<Checkpoint> checkpoint = OpenOrDie(dir);
  ASSERT_NE(checkpoint, nullptr);
  EXPECT_THAT(checkpoint->LoadF32("noscale.weight", {2, 2}).status().message(),
              HasSubstr("FP8 tensor 'noscale.weight' has no scale tensor 'noscale.weight_scale_inv'"));
  EXPECT_THAT(checkpoint->LoadF32("wrongscale.weight", {130, 2}).status().message(),
              HasSubstr("tensor 'wrongscale.weight_scale_inv' has shape [1, 1], expected [2, 1]"));
  absl::StatusOr<std::vector<float>> good = checkpoint->LoadF32("good.weight", {130, 2});
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ((*good)[0], 0.5f);
  EXPECT_EQ((*good)[127 * 2 + 1], 0.5f);
  EXPECT_EQ((*good)[128 * 2], 4.0f);  // the partial second row block
  EXPECT_EQ((*good)[129 * 2 + 1], 4.0f);
  EXPECT_THAT(checkpoint->LoadF32("ints", {2}).status().message(), HasSubstr("tensor 'ints' has dtype i32"));
}

TEST(CheckpointTest, CheckTensorsReportsTheFirstProblem) {
  std::unique_ptr<Checkpoint> checkpoint = OpenOrDie(GoldenDir("tiny-v3"));
  ASSERT_NE(checkpoint, nullptr);
  EXPECT_TRUE(checkpoint->CheckTensors(false).ok());

  const std::string dir = MakeCheckpoint("incomplete", {{{"model.embed_tokens.weight", ir::DType::kBF16, {768, 192}},
                                                         std::string(768 * 192 * 2, '\0')}});
  std::unique_ptr<Checkpoint> incomplete = OpenOrDie(dir);
  ASSERT_NE(incomplete, nullptr);
  EXPECT_THAT(incomplete->CheckTensors(false).message(),
              HasSubstr("tensor 'model.layers.0.self_attn.q_a_proj.weight' is missing"));
}

TEST(CheckpointTest, TruncatedShardNamesTheFile) {
  const std::string dir = TestDir("truncated");
  for (const char* file : {"config.json", "model.safetensors"}) {
    WriteFile(dir + "/" + file, ReadFile(GoldenDir("tiny-v2-lite") + "/" + file));
  }
  const std::string bytes = ReadFile(dir + "/model.safetensors");
  WriteFile(dir + "/model.safetensors", bytes.substr(0, bytes.size() - 1000));
  absl::Status status = Checkpoint::Open(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/model.safetensors"));
  EXPECT_THAT(status.message(), HasSubstr("truncated"));
}

TEST(CheckpointTest, DirectoryProblemsAreErrors) {
  EXPECT_THAT(Checkpoint::Open("/nonexistent/checkpoint").status().message(),
              HasSubstr("/nonexistent/checkpoint/config.json"));

  const std::string empty = TestDir("empty");
  WriteFile(empty + "/config.json", ReadFile(GoldenDir("tiny-v2") + "/config.json"));
  EXPECT_THAT(Checkpoint::Open(empty).status().message(), HasSubstr("no *.safetensors files"));

  // An index that maps a tensor to a shard without it.
  const std::string indexed = TestDir("indexed");
  WriteFile(indexed + "/config.json", ReadFile(GoldenDir("tiny-v2") + "/config.json"));
  ASSERT_TRUE(WriteSafetensorsFile(indexed + "/a.safetensors",
                                   {{{"x", ir::DType::kF32, {1}}, Bytes(std::vector<float>{1})}})
                  .ok());
  WriteFile(indexed + "/model.safetensors.index.json", R"({"weight_map": {"x": "a.safetensors", "y": "a.safetensors"}})");
  EXPECT_THAT(Checkpoint::Open(indexed).status().message(),
              HasSubstr("tensor 'y' is mapped to a.safetensors, which does not contain it"));
  WriteFile(indexed + "/model.safetensors.index.json", R"({"weight_map": {"x": "../a.safetensors"}})");
  EXPECT_THAT(Checkpoint::Open(indexed).status().message(), HasSubstr("not a file name"));
  WriteFile(indexed + "/model.safetensors.index.json", R"({"weight_map": {"x": "b.safetensors"}})");
  EXPECT_THAT(Checkpoint::Open(indexed).status().message(), HasSubstr("b.safetensors"));
  WriteFile(indexed + "/model.safetensors.index.json", R"([])");
  EXPECT_THAT(Checkpoint::Open(indexed).status().message(), HasSubstr("model.safetensors.index.json"));
  WriteFile(indexed + "/model.safetensors.index.json", R"({"weight_map": {"x": "a.safetensors"}})");
  EXPECT_TRUE(Checkpoint::Open(indexed).ok());

  // The same tensor in two files of an unindexed directory.
  const std::string twice = TestDir("twice");
  WriteFile(twice + "/config.json", ReadFile(GoldenDir("tiny-v2") + "/config.json"));
  for (const char* file : {"/a.safetensors", "/b.safetensors"}) {
    ASSERT_TRUE(WriteSafetensorsFile(twice + file, {{{"x", ir::DType::kF32, {1}}, Bytes(std::vector<float>{1})}}).ok());
  }
  EXPECT_THAT(Checkpoint::Open(twice).status().message(), HasSubstr("tensor 'x' is in both"));
}

}  // namespace
}  // namespace dsrt::models
