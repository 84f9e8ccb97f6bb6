#include "tests/passes/rewrite_test_util.h"

#include <algorithm>

#include "gtest/gtest.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/status_macros.h"
#include "ir/verifier.h"
#include "passes/pass_manager.h"
#include "tests/passes/pass_test_util.h"

namespace dsrt::passes::fixtures {

std::unique_ptr<ir::Graph> ParseOrFail(absl::string_view text) {
  auto graph = ir::ParseGraph(text);
  EXPECT_TRUE(graph.ok()) << graph.status();
  if (!graph.ok()) return std::make_unique<ir::Graph>();
  return std::move(graph).value();
}

std::unique_ptr<ir::Graph> CloneGraph(const ir::Graph& graph) { return ParseOrFail(ir::PrintGraph(graph)); }

std::unique_ptr<ir::Graph> GraphBeforePass(const models::DeepSeekConfig& config, const std::string& pass,
                                           ir::DType dtype) {
  auto graph = NaiveGraph(config, dtype);
  for (const std::string& name : DefaultPipeline()) {
    if (name == pass) break;
    absl::StatusOr<std::unique_ptr<Pass>> before = CreatePass(name);
    EXPECT_TRUE(before.ok()) << before.status();
    if (!before.ok()) break;
    absl::StatusOr<bool> changed = RunAndVerify(**before, *graph);
    EXPECT_TRUE(changed.ok()) << name << ": " << changed.status();
  }
  return graph;
}

absl::StatusOr<bool> RunAndVerify(Pass& pass, ir::Graph& graph) {
  DSRT_ASSIGN_OR_RETURN(bool changed, pass.Run(graph));
  DSRT_RETURN_IF_ERROR(ir::VerifyGraph(graph));
  return changed;
}

absl::StatusOr<double> LogitDifference(const ir::Graph& a, const ir::Graph& b, int64_t vocab, uint64_t seed) {
  RandomWeights weights(a, seed);
  const std::vector<int32_t> prompt = RandomIds(vocab, 7, seed + 1);
  const std::vector<int32_t> decode = RandomIds(vocab, 3, seed + 2);
  DSRT_ASSIGN_OR_RETURN(auto logits_a, RunSteps(a, weights, prompt, decode));
  DSRT_ASSIGN_OR_RETURN(auto logits_b, RunSteps(b, weights, prompt, decode));
  return MaxAbsDiff(logits_a, logits_b);
}

void ExpectPassUndoes(Pass& pass, const ir::Graph& reference, ir::Graph& graph, int64_t vocab,
                      const std::string& what) {
  auto changed = RunAndVerify(pass, graph);
  ASSERT_TRUE(changed.ok()) << what << ": " << changed.status();
  EXPECT_TRUE(*changed) << what;
  EXPECT_EQ(OpCounts(graph), OpCounts(reference)) << what;
  auto diff = LogitDifference(reference, graph, vocab);
  ASSERT_TRUE(diff.ok()) << what << ": " << diff.status();
  EXPECT_EQ(*diff, 0.0) << what;
}

void ExpectPassFindsNothingInBuilderGraphs(const std::string& name) {
  for (const std::string preset : {"tiny-v2-lite", "tiny-v2", "tiny-v3"}) {
    auto graph = GraphBeforePass(PresetConfig(preset), name);
    auto pass = CreatePass(name);
    ASSERT_TRUE(pass.ok()) << pass.status();
    auto changed = (*pass)->Run(*graph);
    ASSERT_TRUE(changed.ok()) << preset << ": " << changed.status();
    EXPECT_FALSE(*changed) << preset;
  }
}

}  // namespace dsrt::passes::fixtures
