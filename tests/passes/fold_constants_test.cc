#include "passes/fold_constants.h"

#include <iostream>

#include "gtest/gtest.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "tests/passes/pass_test_util.h"
#include "tests/passes/rewrite_test_util.h"

namespace dsrt::passes {
namespace {

using fixtures::OpCounts;
using fixtures::ParseOrFail;

// Every fold the pass knows, in a graph the reference backend can run (vocab 16).
constexpr char kFoldable[] = R"(graph main {
  %ids = Parameter() {name="token_ids"} : i32[tokens]
  %table = Constant() {weight="model.embed_tokens.weight"} : f32[16,8]
  %head = Constant() {weight="lm_head.weight"} : f32[16,3]
  %h = Embedding(%table, %ids) {dtype="f32"} : f32[tokens,8]
  %same = Reshape(%h) {shape=[0,8]} : f32[tokens,8]
  %cast = Cast(%same) {dtype="f32"} : f32[tokens,8]
  %whole = Slice(%cast) {axis=1, end=8, start=0} : f32[tokens,8]
  %one = Concat(%whole) {axis=1} : f32[tokens,8]
  %heads = Reshape(%one) {shape=[0,2,4]} : f32[tokens,2,4]
  %pairs = Reshape(%heads) {shape=[0,4,-1]} : f32[tokens,4,2]
  %flat = Reshape(%pairs) {shape=[0,8]} : f32[tokens,8]
  %wide = Slice(%flat) {axis=1, end=7, start=1} : f32[tokens,6]
  %narrow = Slice(%wide) {axis=-1, end=5, start=2} : f32[tokens,3]
  %expanded = Expand(%narrow) {shape=[0,3]} : f32[tokens,3]
  %logits = Linear(%expanded, %head) : f32[tokens,16]
  %out = Reshape(%logits) {shape=[0,16]} : f32[tokens,16]
  return %out
})";

TEST(FoldConstants, RemovesIdentitiesAndComposesChains) {
  auto graph = ParseOrFail(kFoldable);
  const auto before = OpCounts(*graph);
  FoldConstants pass;
  auto changed = fixtures::RunAndVerify(pass, *graph);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  // Reshape to [2,4], [4,2] and back to [8] is no reshape at all; the two slices are one.
  EXPECT_EQ(ir::PrintGraph(*graph), ir::PrintGraph(*ParseOrFail(R"(graph main {
  %ids = Parameter() {name="token_ids"} : i32[tokens]
  %table = Constant() {weight="model.embed_tokens.weight"} : f32[16,8]
  %head = Constant() {weight="lm_head.weight"} : f32[16,3]
  %h = Embedding(%table, %ids) {dtype="f32"} : f32[tokens,8]
  %narrow = Slice(%h) {axis=1, end=6, start=3} : f32[tokens,3]
  %logits = Linear(%narrow, %head) : f32[tokens,16]
  return %logits
})")));
  const auto after = OpCounts(*graph);
  EXPECT_EQ(before.at("Reshape"), 5);
  EXPECT_EQ(after.count("Reshape"), 0u);
  EXPECT_EQ(before.at("Slice"), 3);
  EXPECT_EQ(after.at("Slice"), 1);
  for (const char* op : {"Cast", "Concat", "Expand"}) EXPECT_EQ(after.count(op), 0u) << op;
  EXPECT_EQ(graph->num_nodes(), 6);
  EXPECT_FALSE(*pass.Run(*graph));  // nothing is left to fold
}

TEST(FoldConstants, KeepsTheLogits) {
  auto before = ParseOrFail(kFoldable);
  auto after = ParseOrFail(kFoldable);
  FoldConstants pass;
  ASSERT_TRUE(fixtures::RunAndVerify(pass, *after).ok());
  auto diff = fixtures::LogitDifference(*before, *after, 16);
  ASSERT_TRUE(diff.ok()) << diff.status();
  EXPECT_EQ(*diff, 0.0);
}

TEST(FoldConstants, LeavesOpsThatDoWorkAlone) {
  auto graph = ParseOrFail(R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,8]
  %reshaped = Reshape(%x) {shape=[0,2,4]} : f32[tokens,2,4]
  %part = Slice(%reshaped) {axis=2, end=3, start=1} : f32[tokens,2,2]
  %across = Slice(%part) {axis=1, end=1, start=0} : f32[tokens,1,2]
  %expanded = Expand(%across) {shape=[0,3,0]} : f32[tokens,3,2]
  %bf16 = Cast(%expanded) {dtype="bf16"} : bf16[tokens,3,2]
  %joined = Concat(%x, %x) {axis=1} : f32[tokens,16]
  return %bf16, %joined
})");
  const std::string before = ir::PrintGraph(*graph);
  FoldConstants pass;
  auto changed = pass.Run(*graph);
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  EXPECT_EQ(ir::PrintGraph(*graph), before);
}

// Puts Cast(f32), a Reshape to [..., 1, D] and one back, and a Slice over the whole last
// axis between every f32 Linear and its input: four nodes that compute nothing.
int InsertIdentities(ir::Graph& graph) {
  std::vector<ir::Node*> linears;
  for (const auto& node : graph.nodes()) {
    if (node->op() == "Linear" && node->input(0)->type().dtype == ir::DType::kF32) linears.push_back(node.get());
  }
  for (ir::Node* linear : linears) {
    ir::Value* x = linear->input(0);
    const ir::TensorType type = x->type();
    const int rank = type.rank();
    const int64_t width = type.dims.back().size;
    ir::TensorType raised = type;
    raised.dims.insert(raised.dims.end() - 1, ir::Dim::Static(1));
    std::vector<int64_t> up(rank - 1, 0), down(rank - 1, 0);
    up.insert(up.end(), {1, width});
    down.push_back(width);
    ir::Value* v = graph.AddNode("Cast", {x}, {{"dtype", std::string("f32")}}, {type})->output();
    v = graph.AddNode("Reshape", {v}, {{"shape", up}}, {raised})->output();
    v = graph.AddNode("Reshape", {v}, {{"shape", down}}, {type})->output();
    const ir::AttrMap whole_axis = {{"axis", int64_t{rank - 1}}, {"start", int64_t{0}}, {"end", width}};
    v = graph.AddNode("Slice", {v}, whole_axis, {type})->output();
    linear->set_input(0, v);
  }
  EXPECT_TRUE(graph.TopologicalSort().ok());
  EXPECT_TRUE(ir::VerifyGraph(graph).ok()) << ir::VerifyGraph(graph);
  return static_cast<int>(linears.size());
}

TEST(FoldConstants, RemovesWhatWasInsertedIntoWholeModelsAndKeepsTheirLogits) {
  for (const std::string preset : {"tiny-v2-lite", "tiny-v3"}) {
    const models::DeepSeekConfig c = fixtures::PresetConfig(preset);
    auto reference = fixtures::GraphBeforePass(c, "fold-constants");
    auto graph = fixtures::CloneGraph(*reference);
    const int linears = InsertIdentities(*graph);
    ASSERT_GT(linears, 0);
    EXPECT_EQ(graph->num_nodes(), reference->num_nodes() + 4 * linears);
    FoldConstants pass;
    fixtures::ExpectPassUndoes(pass, *reference, *graph, c.vocab_size, preset);
  }
}

// Honest about what it does in practice: the model builder writes no identity and no
// chain, so on the real pipeline the pass finds nothing.
TEST(FoldConstants, FindsNothingInTheGraphsTheModelBuilderWrites) {
  fixtures::ExpectPassFindsNothingInBuilderGraphs("fold-constants");
}

}  // namespace
}  // namespace dsrt::passes
