// Partitioned engines against the single-rank engine of the same checkpoint: the ranks
// run as threads of this process (backends::InProcessGroup), so every combination of
// tp and ep, backend and weight type is checked quickly and under the sanitizers.
// tests/mpi_test.py runs the same engines as separate processes under mpirun.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "backends/communicator.h"
#include "gtest/gtest.h"
#include "models/config.h"
#include "ir/status_macros.h"
#include "models/synth.h"
#include "runtime/engine_builder.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "ir/testutil/scratch_dir.h"

namespace dsrt {
namespace {

struct Case {
  std::string preset;
  int tp = 1;
  int ep = 1;
  std::string backend = "onednn";
  ir::DType dtype = ir::DType::kF32;
  std::string weights;  // "" = dtype
  std::string moe_combine = "allreduce";
};

std::string Name(const Case& c) {
  std::string name = absl::StrCat(c.preset, "_tp", c.tp, "_ep", c.ep, "_", c.backend, "_", ir::DTypeName(c.dtype),
                                  c.weights.empty() ? "" : "_" + c.weights, c.moe_combine == "alltoall" ? "_a2a" : "");
  for (char& ch : name) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return name;
}

std::string Checkpoint(const std::string& preset) {
  const std::string dir = dsrt::testutil::ScratchPath(absl::StrCat("partition_", preset));
  if (std::filesystem::exists(dir + "/config.json")) return dir;
  auto text = models::PresetConfigJson(preset);
  EXPECT_TRUE(text.ok()) << text.status();
  auto config = models::ParseDeepSeekConfig(*text, preset);
  EXPECT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(models::SynthesizeCheckpoint(*config, *text, dir, /*seed=*/11, {}).ok());
  return dir;
}

absl::StatusOr<std::string> Build(const Case& c, int tp, int ep) {
  runtime::EngineBuildOptions options;
  options.checkpoint_dir = Checkpoint(c.preset);
  options.output_path = absl::StrCat(options.checkpoint_dir, "/", Name(c), "_", tp, "x", ep, ".engine");
  options.dtype = c.dtype;
  options.weights = c.weights;
  // Groups of 32 columns: every split of these presets falls on a group boundary, so the
  // ranks quantize exactly the groups the single-rank engine does.
  options.quant_group_size = 32;
  options.tp = tp;
  options.ep = ep;
  options.moe_combine = c.moe_combine;
  DSRT_RETURN_IF_ERROR(runtime::BuildEngine(options).status());
  return options.output_path;
}

// A prefill of two sequences in one step, then decode steps that feed back the
// single-rank engine's greedy tokens (so that both sides see the same inputs).
std::vector<backends::StepInput> Steps() {
  std::vector<backends::StepInput> steps;
  backends::StepInput prefill;
  const std::vector<int32_t> a = {1, 17, 33, 5, 260, 7}, b = {2, 99, 41};
  for (size_t i = 0; i < a.size(); ++i) {
    prefill.token_ids.push_back(a[i]);
    prefill.positions.push_back(static_cast<int32_t>(i));
    prefill.sequence_slots.push_back(0);
  }
  for (size_t i = 0; i < b.size(); ++i) {
    prefill.token_ids.push_back(b[i]);
    prefill.positions.push_back(static_cast<int32_t>(i));
    prefill.sequence_slots.push_back(1);
  }
  prefill.logit_rows = {5, 8};  // the last of each: a vocabulary-split LM head gathers just those
  steps.push_back(prefill);
  return steps;
}

backends::StepInput NextDecode(const backends::StepOutput& out, int32_t position_a, int32_t position_b) {
  backends::StepInput next;
  next.token_ids = {runtime::Argmax(absl::MakeConstSpan(out.row(out.rows - 2), out.vocab)),
                    runtime::Argmax(absl::MakeConstSpan(out.row(out.rows - 1), out.vocab))};
  next.positions = {position_a, position_b};
  next.sequence_slots = {0, 1};
  return next;
}

// The logits of every step: the prefill, then `decodes` steps of both sequences.
std::vector<backends::StepOutput> RunSingle(const std::string& engine, const Case& c, int decodes,
                                            std::vector<backends::StepInput>* steps) {
  auto session = runtime::Session::Open(engine, {.backend = c.backend, .threads = 1, .max_sequences = 2});
  EXPECT_TRUE(session.ok()) << session.status();
  if (!session.ok()) return {};
  std::vector<backends::StepOutput> outputs;
  *steps = Steps();
  for (int i = 0; i <= decodes; ++i) {
    backends::StepOutput out;
    absl::Status s = (*session)->Step((*steps)[i], &out);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) return {};
    outputs.push_back(out);
    if (i < decodes) steps->push_back(NextDecode(out, 6 + i, 3 + i));
  }
  return outputs;
}

// Every rank of a partitioned engine, each in its own thread, running `steps`.
std::vector<std::vector<backends::StepOutput>> RunRanks(const std::string& engine, const Case& c, int world,
                                                        const std::vector<backends::StepInput>& steps) {
  std::vector<std::unique_ptr<backends::Communicator>> group = backends::InProcessGroup(world);
  std::vector<std::vector<backends::StepOutput>> outputs(world);
  std::vector<absl::Status> status(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto session = runtime::Session::Open(
          engine, {.backend = c.backend, .threads = 1, .communicator = group[r].get(), .max_sequences = 2});
      if (!session.ok()) {
        status[r] = session.status();
        return;
      }
      for (const backends::StepInput& step : steps) {
        backends::StepOutput out;
        status[r] = (*session)->Step(step, &out);
        if (!status[r].ok()) return;
        outputs[r].push_back(std::move(out));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < world; ++r) EXPECT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
  return outputs;
}

double Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb + 1e-30);
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  float diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::abs(a[i] - b[i]));
  return diff;
}

class PartitionParity : public testing::TestWithParam<Case> {};

TEST_P(PartitionParity, RanksTogetherGiveTheSingleRankLogits) {
  const Case& c = GetParam();
  const int world = std::max(c.tp, c.ep);
  auto single = Build(c, 1, 1);
  ASSERT_TRUE(single.ok()) << single.status();
  auto partitioned = Build(c, c.tp, c.ep);
  ASSERT_TRUE(partitioned.ok()) << partitioned.status();

  std::vector<backends::StepInput> steps;
  const std::vector<backends::StepOutput> expected = RunSingle(*single, c, /*decodes=*/3, &steps);
  ASSERT_EQ(expected.size(), 4u);
  const auto ranks = RunRanks(*partitioned, c, world, steps);
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(ranks[r].size(), expected.size()) << "rank " << r;
    for (size_t s = 0; s < expected.size(); ++s) {
      const std::vector<float>& got = ranks[r][s].logits;
      ASSERT_EQ(got.size(), expected[s].logits.size()) << "rank " << r << " step " << s;
      // Every rank holds the same gathered logits, bit for bit.
      EXPECT_EQ(got, ranks[0][s].logits) << "rank " << r << " step " << s;
      if (c.dtype == ir::DType::kF32 && c.weights.empty()) {
        EXPECT_LT(MaxAbsDiff(got, expected[s].logits), 2e-4) << "step " << s;
      } else {  // bf16 activations: the ranks' partial sums round differently
        EXPECT_GT(Cosine(got, expected[s].logits), 0.999) << "step " << s;
      }
    }
  }
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  const std::vector<std::pair<int, int>> tp_ep = {{2, 1}, {1, 2}, {2, 2}};
  for (const char* preset : {"tiny-v2-lite", "tiny-v2", "tiny-v3"}) {
    for (auto [tp, ep] : tp_ep) {
      cases.push_back({.preset = preset, .tp = tp, .ep = ep});
      cases.push_back({.preset = preset, .tp = tp, .ep = ep, .backend = "reference"});
    }
  }
  for (const char* preset : {"tiny-v2-lite", "tiny-v2", "tiny-v3"}) {
    cases.push_back({.preset = preset, .tp = 1, .ep = 2, .moe_combine = "alltoall"});
    cases.push_back({.preset = preset, .tp = 2, .ep = 2, .backend = "reference", .moe_combine = "alltoall"});
  }
  cases.push_back({.preset = "tiny-v2-lite", .tp = 4, .ep = 2, .moe_combine = "alltoall"});
  cases.push_back({.preset = "tiny-v3", .tp = 4, .ep = 1, .moe_combine = "alltoall"});
  cases.push_back({.preset = "tiny-v2-lite", .tp = 4, .ep = 1});
  cases.push_back({.preset = "tiny-v2-lite", .tp = 1, .ep = 4});
  cases.push_back({.preset = "tiny-v2-lite", .tp = 4, .ep = 2});
  cases.push_back({.preset = "tiny-v2", .tp = 3, .ep = 1});
  cases.push_back({.preset = "tiny-v3", .tp = 4, .ep = 4});
  cases.push_back({.preset = "tiny-v3", .tp = 2, .ep = 2, .dtype = ir::DType::kBF16});
  cases.push_back({.preset = "tiny-v3", .tp = 2, .ep = 2, .dtype = ir::DType::kBF16, .weights = "int8"});
  cases.push_back({.preset = "tiny-v3", .tp = 2, .ep = 1, .dtype = ir::DType::kBF16, .weights = "int4"});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Ranks, PartitionParity, testing::ValuesIn(Cases()),
                         [](const testing::TestParamInfo<Case>& info) { return Name(info.param); });

TEST(Partition, AnEngineForTwoRanksRefusesOneProcess) {
  const Case c{.preset = "tiny-v3", .tp = 2};
  auto engine = Build(c, 2, 1);
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto session = runtime::Session::Open(*engine, {.backend = "reference"});
  ASSERT_FALSE(session.ok());
  EXPECT_NE(session.status().message().find("mpirun -n 2"), std::string::npos) << session.status();
}

TEST(Partition, RanksWithDifferentEnginesAllFail) {
  auto tp = Build({.preset = "tiny-v3"}, 2, 1);
  auto ep = Build({.preset = "tiny-v3"}, 1, 2);
  ASSERT_TRUE(tp.ok() && ep.ok());
  std::vector<std::unique_ptr<backends::Communicator>> group = backends::InProcessGroup(2);
  std::vector<absl::Status> status(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      status[r] = runtime::Session::Open(r == 0 ? *tp : *ep, {.backend = "reference", .communicator = group[r].get()})
                      .status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    EXPECT_FALSE(status[r].ok()) << "rank " << r;
    EXPECT_NE(status[r].message().find("different engine files"), std::string::npos) << status[r];
  }
}

TEST(Partition, BuildRejectsSplitsThatDoNotDivide) {
  runtime::EngineBuildOptions options;
  options.checkpoint_dir = Checkpoint("tiny-v2");  // 6 heads
  options.output_path = options.checkpoint_dir + "/bad.engine";
  options.tp = 4;
  absl::Status heads = runtime::BuildEngine(options).status();
  EXPECT_NE(heads.message().find("6 heads do not divide among 4 ranks"), std::string::npos) << heads;
  options.tp = 2;
  options.ep = 4;
  absl::Status tp = runtime::BuildEngine(options).status();
  EXPECT_NE(tp.message().find("tp must be 1 or the world size 4"), std::string::npos) << tp;
}

}  // namespace
}  // namespace dsrt
