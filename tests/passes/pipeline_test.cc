// The default pipeline on whole DeepSeek models, run before and after on the reference backend.

#include "gtest/gtest.h"
#include "passes/pass_manager.h"
#include "tests/passes/pass_test_util.h"

namespace dsrt::passes {
namespace {

// The default pipeline on whole models: latent attention, fused experts, nothing else
// left of the naive blocks, and the same logits through prefill and decode.
TEST(DefaultPipeline, KeepsTheLogitsOfWholeModels) {
  for (const std::string preset : {"tiny-v2-lite", "tiny-v2", "tiny-v3"}) {
    const models::DeepSeekConfig c = fixtures::PresetConfig(preset);
    auto naive = fixtures::NaiveGraph(c);
    auto optimized = fixtures::NaiveGraph(c);
    PassManager manager("default");
    for (const std::string& name : DefaultPipeline()) manager.AddPass(*CreatePass(name));
    auto records = manager.Run(*optimized);
    ASSERT_TRUE(records.ok()) << records.status();
    for (const PassRecord& r : *records) {
      // The passes clean up after themselves (dce finds nothing), and the builder writes
      // nothing fold-constants or cse could simplify.
      const bool finds_nothing = r.name == "dce" || r.name == "fold-constants" || r.name == "cse";
      EXPECT_EQ(r.changed, !finds_nothing) << preset << " " << r.name;
    }
    auto ops = fixtures::OpCounts(*optimized);
    for (const char* gone : {"Attention", "ExpertWeight", "Expand", "Concat", "Rope", "Silu"}) {
      EXPECT_EQ(ops[gone], 0) << gone;
    }
    EXPECT_EQ(ops["MLAAttention"], c.num_hidden_layers);
    fixtures::RandomWeights weights(*naive, /*seed=*/5);
    const auto prompt = fixtures::RandomIds(c.vocab_size, 7, 5);
    const auto decode = fixtures::RandomIds(c.vocab_size, 3, 6);
    auto before = fixtures::RunSteps(*naive, weights, prompt, decode);
    auto after = fixtures::RunSteps(*optimized, weights, prompt, decode);
    ASSERT_TRUE(before.ok() && after.ok());
    EXPECT_LE(fixtures::MaxAbsDiff(*before, *after), 1e-4) << preset;
  }
}

}  // namespace
}  // namespace dsrt::passes
