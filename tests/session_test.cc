// The runtime end to end on a synthesized checkpoint: build an engine, then check
// that decoding through the KV cache agrees with re-prefilling the whole sequence.

#include <filesystem>

#include "gtest/gtest.h"
#include "models/config.h"
#include "models/synth.h"
#include "runtime/engine_builder.h"
#include "runtime/session.h"
#include "serialization/engine_reader.h"
#include "ir/testutil/scratch_dir.h"

#include <cmath>

namespace dsrt {
namespace {

std::string BuildTinyEngine(const std::string& preset, ir::DType dtype) {
  const std::string dir = dsrt::testutil::ScratchPath("session_test_" + preset);
  std::filesystem::remove_all(dir);
  auto text = models::PresetConfigJson(preset);
  EXPECT_TRUE(text.ok()) << text.status();
  auto config = models::ParseDeepSeekConfig(*text, preset);
  EXPECT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(models::SynthesizeCheckpoint(*config, *text, dir, /*seed=*/3, {}).ok());
  runtime::EngineBuildOptions options;
  options.checkpoint_dir = dir;
  options.output_path = dir + "/model.engine";
  options.dtype = dtype;
  auto report = runtime::BuildEngine(options);
  EXPECT_TRUE(report.ok()) << report.status();
  return options.output_path;
}

float MaxAbsDiff(const float* a, const float* b, int64_t n) {
  float worst = 0;
  for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

class DecodeMatchesPrefill : public testing::TestWithParam<std::string> {};

TEST_P(DecodeMatchesPrefill, EveryDecodeStepEqualsTheLastRowOfAFullPrefill) {
  const std::string engine = BuildTinyEngine(GetParam(), ir::DType::kF32);
  auto cached = runtime::Session::Open(engine, {});
  ASSERT_TRUE(cached.ok()) << cached.status();
  std::vector<int32_t> sequence = {11, 42, 7, 99, 3};
  backends::StepOutput out;
  ASSERT_TRUE((*cached)->Step(backends::StepInput::ForSequence(sequence, 0), &out).ok());

  for (int step = 0; step < 6; ++step) {
    const int32_t next = runtime::Argmax(absl::MakeConstSpan(out.row(out.rows - 1), out.vocab));
    const int32_t position = static_cast<int32_t>(sequence.size());
    sequence.push_back(next);
    ASSERT_TRUE((*cached)->Step(backends::StepInput::ForSequence({next}, position), &out).ok());

    auto fresh = runtime::Session::Open(engine, {.verify_weights = false});
    ASSERT_TRUE(fresh.ok());
    backends::StepOutput full;
    ASSERT_TRUE((*fresh)->Step(backends::StepInput::ForSequence(sequence, 0), &full).ok());
    EXPECT_LT(MaxAbsDiff(out.row(0), full.row(full.rows - 1), out.vocab), 1e-4) << "decode step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, DecodeMatchesPrefill, testing::Values("tiny-v2-lite", "tiny-v2", "tiny-v3"));

TEST(Generate, RefusesTokenIdsOutsideTheVocabulary) {
  auto session = runtime::Session::Open(BuildTinyEngine("tiny-v2-lite", ir::DType::kF32), {});
  ASSERT_TRUE(session.ok());
  auto result = runtime::Generate(**session, {1, 512}, {});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("512"), std::string::npos) << result.status();
}

TEST(Generate, SamplingIsDeterministicForASeed) {
  auto session = runtime::Session::Open(BuildTinyEngine("tiny-v2-lite", ir::DType::kBF16), {});
  ASSERT_TRUE(session.ok());
  runtime::GenerateOptions options;
  options.max_new_tokens = 8;
  options.sampling = {.greedy = false, .temperature = 0.8, .top_p = 0.9, .top_k = 40, .seed = 1234};
  auto first = runtime::Generate(**session, {5, 6, 7}, options);
  auto second = runtime::Generate(**session, {5, 6, 7}, options);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->generated, second->generated);
  EXPECT_EQ(first->generated.size(), 8u);
}

}  // namespace
}  // namespace dsrt

namespace dsrt {
namespace {

// tiny-v3 carries an MTP layer: the engine holds its graph, which runs on the main
// graph's hidden state and predicts one token further.
TEST(Mtp, TheEngineCarriesTheMtpModuleAndItRunsOnTheMainGraphsHiddenState) {
  const std::string path = BuildTinyEngine("tiny-v3", ir::DType::kF32);
  auto engine = serialization::Engine::Open(path, 0);
  ASSERT_TRUE(engine.ok()) << engine.status();
  ASSERT_TRUE((*engine)->has_mtp_graph());
  auto mtp = (*engine)->LoadMtpGraph();
  ASSERT_TRUE(mtp.ok()) << mtp.status();
  EXPECT_NE((*mtp)->FindParameter("hidden"), nullptr);

  auto session = runtime::Session::Open(path, {});
  ASSERT_TRUE(session.ok());
  const std::vector<int32_t> prompt = {5, 17, 300, 42};
  backends::StepOutput main_out;
  ASSERT_TRUE((*session)->Step(backends::StepInput::ForSequence(prompt, 0), &main_out).ok());
  ASSERT_EQ(main_out.hidden.size(), prompt.size() * 192);

  auto backend = backends::CreateBackend("reference");
  ASSERT_TRUE(backend.ok());
  auto executable = (*backend)->Compile(**mtp, (*engine)->weights());
  ASSERT_TRUE(executable.ok()) << executable.status();
  auto layout = backends::CacheLayoutOf(**mtp);
  ASSERT_TRUE(layout.ok());
  backends::ContiguousKvCache cache(*layout, 1, 64);
  // Position i reads the hidden state at i and the embedding of token i+1.
  backends::StepInput step = backends::StepInput::ForSequence({17, 300, 42}, 0);
  step.hidden.assign(main_out.hidden.begin(), main_out.hidden.end() - 192);
  backends::StepOutput mtp_out;
  ASSERT_TRUE((*executable)->Run(step, cache, &mtp_out).ok());
  EXPECT_EQ(mtp_out.rows, 3);
  EXPECT_EQ(mtp_out.vocab, 768);
  for (float v : mtp_out.logits) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace dsrt
