#include "passes/cse.h"

#include "gtest/gtest.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/rewrite_util.h"
#include "tests/passes/pass_test_util.h"
#include "tests/passes/rewrite_test_util.h"

namespace dsrt::passes {
namespace {

using fixtures::OpCounts;
using fixtures::ParseOrFail;

// Duplicates of every kind the pass merges, in a graph the reference backend can run
// (vocab 16): a weight named twice, a Rope and a Reshape computed twice, the same Add
// with its operands swapped, and a duplicate whose inputs are themselves duplicates.
constexpr char kDuplicated[] = R"(graph main {
  %ids = Parameter() {name="token_ids"} : i32[tokens]
  %positions = Parameter() {name="positions"} : i32[tokens]
  %table = Constant() {weight="model.embed_tokens.weight"} : f32[16,8]
  %table.again = Constant() {weight="model.embed_tokens.weight"} : f32[16,8]
  %head = Constant() {weight="lm_head.weight"} : f32[16,8]
  %h = Embedding(%table, %ids) {dtype="f32"} : f32[tokens,8]
  %h.again = Embedding(%table.again, %ids) {dtype="f32"} : f32[tokens,8]
  %heads = Reshape(%h) {shape=[0,2,4]} : f32[tokens,2,4]
  %heads.again = Reshape(%h.again) {shape=[0,2,4]} : f32[tokens,2,4]
  %rot = Rope(%heads, %positions) {inv_freq=[1.0,0.01], scale=1.0} : f32[tokens,2,4]
  %rot.again = Rope(%heads.again, %positions) {inv_freq=[1.0,0.01], scale=1.0} : f32[tokens,2,4]
  %rot.other = Rope(%heads, %positions) {inv_freq=[1.0,0.02], scale=1.0} : f32[tokens,2,4]
  %sum = Add(%rot, %rot.other) : f32[tokens,2,4]
  %sum.swapped = Add(%rot.other, %rot.again) : f32[tokens,2,4]
  %both = Mul(%sum, %sum.swapped) : f32[tokens,2,4]
  %flat = Reshape(%both) {shape=[0,8]} : f32[tokens,8]
  %logits = Linear(%flat, %head) : f32[tokens,16]
  return %logits
})";

TEST(Cse, MergesDuplicatesAndReadsTheFirstOfEach) {
  auto graph = ParseOrFail(kDuplicated);
  Cse pass;
  auto changed = fixtures::RunAndVerify(pass, *graph);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(ir::PrintGraph(*graph), ir::PrintGraph(*ParseOrFail(R"(graph main {
  %ids = Parameter() {name="token_ids"} : i32[tokens]
  %positions = Parameter() {name="positions"} : i32[tokens]
  %table = Constant() {weight="model.embed_tokens.weight"} : f32[16,8]
  %head = Constant() {weight="lm_head.weight"} : f32[16,8]
  %h = Embedding(%table, %ids) {dtype="f32"} : f32[tokens,8]
  %heads = Reshape(%h) {shape=[0,2,4]} : f32[tokens,2,4]
  %rot = Rope(%heads, %positions) {inv_freq=[1.0,0.01], scale=1.0} : f32[tokens,2,4]
  %rot.other = Rope(%heads, %positions) {inv_freq=[1.0,0.02], scale=1.0} : f32[tokens,2,4]
  %sum = Add(%rot, %rot.other) : f32[tokens,2,4]
  %both = Mul(%sum, %sum) : f32[tokens,2,4]
  %flat = Reshape(%both) {shape=[0,8]} : f32[tokens,8]
  %logits = Linear(%flat, %head) : f32[tokens,16]
  return %logits
})")));
  EXPECT_FALSE(*pass.Run(*graph));
}

TEST(Cse, KeepsTheLogits) {
  auto before = ParseOrFail(kDuplicated);
  auto after = ParseOrFail(kDuplicated);
  Cse pass;
  ASSERT_TRUE(fixtures::RunAndVerify(pass, *after).ok());
  auto diff = fixtures::LogitDifference(*before, *after, 16);
  ASSERT_TRUE(diff.ok()) << diff.status();
  EXPECT_EQ(*diff, 0.0);
}

TEST(Cse, NeverMergesParametersOrCacheWriters) {
  auto graph = ParseOrFail(R"(graph main {
  %a = Parameter() {name="x"} : f32[tokens,2,4]
  %b = Parameter() {name="x"} : f32[tokens,2,4]
  %positions = Parameter() {name="positions"} : i32[tokens]
  %attn = Attention(%a, %a, %a, %positions) {cache_slot=0, scale=0.5} : f32[tokens,2,4]
  %attn.again = Attention(%a, %a, %a, %positions) {cache_slot=0, scale=0.5} : f32[tokens,2,4]
  %tagged = Mul(%attn, %b) {cache_slot=1} : f32[tokens,2,4]
  %tagged.again = Mul(%attn, %b) {cache_slot=1} : f32[tokens,2,4]
  %sum = Add(%attn.again, %tagged) : f32[tokens,2,4]
  %out = Add(%sum, %tagged.again) : f32[tokens,2,4]
  return %out
})");
  const std::string before = ir::PrintGraph(*graph);
  Cse pass;
  auto changed = pass.Run(*graph);
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  EXPECT_EQ(ir::PrintGraph(*graph), before);
}

// Clones every Constant, RMSNorm, Rope, Linear, Reshape and Slice of `graph` and moves the
// first reader of each onto its clone; returns how many nodes it added.
int DuplicateWork(ir::Graph& graph) {
  const ReaderIndex readers = IndexReaders(graph);
  std::vector<ir::Node*> originals;
  for (const auto& node : graph.nodes()) {
    const std::string& op = node->op();
    if (op == "Constant" || op == "RMSNorm" || op == "Rope" || op == "Linear" || op == "Reshape" || op == "Slice") {
      originals.push_back(node.get());
    }
  }
  int added = 0;
  for (ir::Node* node : originals) {
    auto it = readers.find(node->output());
    if (it == readers.end() || it->second[0] == nullptr) continue;
    ir::Node* clone = graph.AddNode(node->op(), node->inputs(), node->attrs(), {node->output()->type()},
                                    {node->output()->name() + ".clone"}, node->scope());
    ir::Node* reader = it->second[0];
    for (int i = 0; i < reader->num_inputs(); ++i) {
      if (reader->input(i) == node->output()) reader->set_input(i, clone->output());
    }
    ++added;
  }
  EXPECT_TRUE(graph.TopologicalSort().ok());
  EXPECT_TRUE(ir::VerifyGraph(graph).ok()) << ir::VerifyGraph(graph);
  return added;
}

TEST(Cse, MergesWhatWasDuplicatedInWholeModelsAndKeepsTheirLogits) {
  for (const std::string preset : {"tiny-v2", "tiny-v3"}) {
    const models::DeepSeekConfig c = fixtures::PresetConfig(preset);
    auto reference = fixtures::GraphBeforePass(c, "cse");
    auto graph = fixtures::CloneGraph(*reference);
    const int added = DuplicateWork(*graph);
    ASSERT_GT(added, 0);
    EXPECT_EQ(graph->num_nodes(), reference->num_nodes() + added);
    Cse pass;
    fixtures::ExpectPassUndoes(pass, *reference, *graph, c.vocab_size, preset);
  }
}

// The model builder names each weight once and computes nothing twice, so on the real
// pipeline the pass finds nothing to merge.
TEST(Cse, FindsNothingInTheGraphsTheModelBuilderWrites) { fixtures::ExpectPassFindsNothingInBuilderGraphs("cse"); }

}  // namespace
}  // namespace dsrt::passes
