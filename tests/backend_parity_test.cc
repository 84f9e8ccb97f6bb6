// The oneDNN backend against the reference backend on whole engines: prefill, decode
// through the cache, several sequences in one step, f32 / bf16 / int8 / int4 weights,
// with the AVX-512 kernels and with their plain fallbacks.

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "backends/onednn/cpu.h"
#include "gtest/gtest.h"
#include "models/config.h"
#include "models/synth.h"
#include "runtime/engine_builder.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "ir/testutil/scratch_dir.h"

namespace dsrt {
namespace {

struct Case {
  std::string preset;
  ir::DType dtype;
  std::string weights;  // "" = dtype
  double min_cosine;
  bool plain_kernels = false;
};

std::string Name(const testing::TestParamInfo<Case>& info) {
  std::string name = info.param.preset + "_" + std::string(ir::DTypeName(info.param.dtype)) +
                     (info.param.weights.empty() ? "" : "_" + info.param.weights) +
                     (info.param.plain_kernels ? "_plain" : "");
  for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return name;
}

std::string BuildEngine(const Case& c) {
  const std::string dir = dsrt::testutil::ScratchPath("backend_parity_" + Name({c, 0}));
  std::filesystem::remove_all(dir);
  auto text = models::PresetConfigJson(c.preset);
  EXPECT_TRUE(text.ok()) << text.status();
  auto config = models::ParseDeepSeekConfig(*text, c.preset);
  EXPECT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(models::SynthesizeCheckpoint(*config, *text, dir, /*seed=*/5, {}).ok());
  runtime::EngineBuildOptions options;
  options.checkpoint_dir = dir;
  options.output_path = dir + "/model.engine";
  options.dtype = c.dtype;
  options.weights = c.weights;
  auto report = runtime::BuildEngine(options);
  EXPECT_TRUE(report.ok()) << report.status();
  return options.output_path;
}

double Cosine(const float* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb + 1e-30);
}

class BackendParity : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    backends::onednn::ForcePlainKernels(GetParam().plain_kernels);
    const std::string engine = BuildEngine(GetParam());
    auto reference = runtime::Session::Open(engine, {.backend = "reference", .max_sequences = 2});
    ASSERT_TRUE(reference.ok()) << reference.status();
    auto onednn = runtime::Session::Open(engine, {.backend = "onednn", .max_sequences = 2, .verify_weights = false});
    ASSERT_TRUE(onednn.ok()) << onednn.status();
    reference_ = std::move(*reference);
    onednn_ = std::move(*onednn);
  }
  void TearDown() override { backends::onednn::ForcePlainKernels(false); }

  // Runs `step` on both and checks every row agrees.
  void ExpectSameStep(const backends::StepInput& step, const std::string& what) {
    backends::StepOutput want, got;
    ASSERT_TRUE(reference_->Step(step, &want).ok());
    absl::Status status = onednn_->Step(step, &got);
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_EQ(got.rows, want.rows);
    ASSERT_EQ(got.vocab, want.vocab);
    // bf16 engines round activations to bf16 before each GEMM (the reference keeps
    // them f32), which on these random tiny models can move a router near-tie: one
    // row in a step may then differ more. Most rows must agree closely, none wildly.
    std::vector<double> cosines;
    for (int64_t r = 0; r < want.rows; ++r) cosines.push_back(Cosine(got.row(r), want.row(r), want.vocab));
    std::vector<double> sorted = cosines;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_GE(sorted[sorted.size() / 2], GetParam().min_cosine) << what << ": median cosine";
    const double floor = GetParam().dtype == ir::DType::kF32 && GetParam().weights.empty() ? 0.99999 : 0.9;
    for (int64_t r = 0; r < want.rows; ++r) EXPECT_GE(cosines[r], floor) << what << ", row " << r;
    if (GetParam().dtype == ir::DType::kF32 && GetParam().weights.empty()) {
      for (int64_t i = 0; i < want.rows * want.vocab; ++i) {
        ASSERT_NEAR(got.logits[i], want.logits[i], 2e-3) << what << ", logit " << i;
      }
    }
    last_ = want;
  }

  std::unique_ptr<runtime::Session> reference_, onednn_;
  backends::StepOutput last_;
};

TEST_P(BackendParity, PrefillThenDecodeThroughTheCache) {
  // Long enough that latent attention takes its GEMM path (more than 4 tokens a run).
  const std::vector<int32_t> prompt = {1, 17, 42, 7, 99, 3, 250, 8, 64, 12, 5, 77};
  ExpectSameStep(backends::StepInput::ForSequence(prompt, 0), "prefill");
  int32_t position = static_cast<int32_t>(prompt.size());
  for (int step = 0; step < 4; ++step, ++position) {
    const int32_t next = runtime::Argmax(absl::MakeConstSpan(last_.row(last_.rows - 1), last_.vocab));
    ExpectSameStep(backends::StepInput::ForSequence({next}, position), "decode step " + std::to_string(step));
  }
}

TEST_P(BackendParity, TwoSequencesShareOneStep) {
  // Prefill both in one step, then decode both in one step.
  backends::StepInput both = backends::StepInput::ForSequence({5, 6, 7, 8, 9, 10}, 0, /*slot=*/0);
  const backends::StepInput second = backends::StepInput::ForSequence({30, 31, 32}, 0, /*slot=*/1);
  both.token_ids.insert(both.token_ids.end(), second.token_ids.begin(), second.token_ids.end());
  both.positions.insert(both.positions.end(), second.positions.begin(), second.positions.end());
  both.sequence_slots.insert(both.sequence_slots.end(), second.sequence_slots.begin(), second.sequence_slots.end());
  ExpectSameStep(both, "batched prefill");
  backends::StepInput decode;
  decode.token_ids = {11, 33};
  decode.positions = {6, 3};
  decode.sequence_slots = {0, 1};
  ExpectSameStep(decode, "batched decode");
}

TEST_P(BackendParity, OnlyTheAskedLogitRowsComeBack) {
  backends::StepInput step = backends::StepInput::ForSequence({1, 2, 3, 4, 5, 6}, 0);
  step.logit_rows = {5, 2};
  ExpectSameStep(step, "two rows");
  EXPECT_EQ(last_.rows, 2);
}

INSTANTIATE_TEST_SUITE_P(
    Engines, BackendParity,
    testing::Values(Case{"tiny-v2-lite", ir::DType::kF32, "", 0.99999}, Case{"tiny-v2", ir::DType::kF32, "", 0.99999},
                    Case{"tiny-v3", ir::DType::kF32, "", 0.99999},
                    Case{"tiny-v3", ir::DType::kF32, "", 0.99999, /*plain_kernels=*/true},
                    Case{"tiny-v2-lite", ir::DType::kBF16, "", 0.999}, Case{"tiny-v3", ir::DType::kBF16, "", 0.999},
                    Case{"tiny-v3", ir::DType::kBF16, "", 0.999, /*plain_kernels=*/true},
                    // Weight-only: activations are quantized to int8 per group on the fast path.
                    Case{"tiny-v2-lite", ir::DType::kBF16, "int8", 0.995},
                    Case{"tiny-v3", ir::DType::kBF16, "int8", 0.995},
                    Case{"tiny-v3", ir::DType::kBF16, "int4", 0.99},
                    Case{"tiny-v3", ir::DType::kBF16, "int4", 0.99, /*plain_kernels=*/true}),
    Name);

}  // namespace
}  // namespace dsrt
