#include "passes/moe_fuse.h"

#include <iostream>

#include "gtest/gtest.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "tests/passes/pass_test_util.h"

namespace dsrt::passes {
namespace {

using fixtures::NaiveGraph;
using fixtures::OpCounts;
using fixtures::PresetConfig;
using fixtures::RunPassThenDce;

std::unique_ptr<ir::Graph> Parse(absl::string_view text) {
  auto graph = ir::ParseGraph(text);
  EXPECT_TRUE(graph.ok()) << graph.status();
  return std::move(graph).value();
}

// One naive MoE layer: hidden 4, 2 routed experts of intermediate size 3, top-1, and a
// residual standing in for whatever follows the routed sum (shared experts, ...).
constexpr char kNaiveMoe[] = R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,4]
  %router.w = Constant() {weight="mlp.gate.weight"} : f32[2,4]
  %ids, %wts = Router(%x, %router.w) {method="greedy", n_group=1, normalize=0, scaling=1.0, scoring="softmax", top_k=1, topk_group=1} : i32[tokens,1], f32[tokens,1]
  %gate.0 = Constant() {weight="mlp.experts.0.gate_proj.weight"} : f32[3,4]
  %up.0 = Constant() {weight="mlp.experts.0.up_proj.weight"} : f32[3,4]
  %down.0 = Constant() {weight="mlp.experts.0.down_proj.weight"} : f32[4,3]
  %g0 = Linear(%x, %gate.0) : f32[tokens,3]
  %a0 = Silu(%g0) : f32[tokens,3]
  %u0 = Linear(%x, %up.0) : f32[tokens,3]
  %h0 = Mul(%a0, %u0) : f32[tokens,3]
  %y0 = Linear(%h0, %down.0) : f32[tokens,4]
  %w0 = ExpertWeight(%ids, %wts) {expert=0} : f32[tokens,1]
  %weighted0 = Mul(%y0, %w0) : f32[tokens,4]
  %gate.1 = Constant() {weight="mlp.experts.1.gate_proj.weight"} : f32[3,4]
  %up.1 = Constant() {weight="mlp.experts.1.up_proj.weight"} : f32[3,4]
  %down.1 = Constant() {weight="mlp.experts.1.down_proj.weight"} : f32[4,3]
  %g1 = Linear(%x, %gate.1) : f32[tokens,3]
  %a1 = Silu(%g1) : f32[tokens,3]
  %u1 = Linear(%x, %up.1) : f32[tokens,3]
  %h1 = Mul(%a1, %u1) : f32[tokens,3]
  %y1 = Linear(%h1, %down.1) : f32[tokens,4]
  %w1 = ExpertWeight(%ids, %wts) {expert=1} : f32[tokens,1]
  %weighted1 = Mul(%y1, %w1) : f32[tokens,4]
  %sum = Add(%weighted0, %weighted1) : f32[tokens,4]
  %out = Add(%sum, %x) : f32[tokens,4]
  return %out
})";

TEST(MoeFuse, RewritesTheExpertsIntoOneFusedMoE) {
  auto graph = Parse(kNaiveMoe);
  MoeFuse pass;
  auto changed = pass.Run(*graph);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  ASSERT_TRUE(ir::VerifyGraph(*graph).ok());
  EXPECT_EQ(ir::PrintGraph(*graph), ir::PrintGraph(*Parse(R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,4]
  %router.w = Constant() {weight="mlp.gate.weight"} : f32[2,4]
  %ids, %wts = Router(%x, %router.w) {method="greedy", n_group=1, normalize=0, scaling=1.0, scoring="softmax", top_k=1, topk_group=1} : i32[tokens,1], f32[tokens,1]
  %gate.0 = Constant() {weight="mlp.experts.0.gate_proj.weight"} : f32[3,4]
  %up.0 = Constant() {weight="mlp.experts.0.up_proj.weight"} : f32[3,4]
  %down.0 = Constant() {weight="mlp.experts.0.down_proj.weight"} : f32[4,3]
  %gate.1 = Constant() {weight="mlp.experts.1.gate_proj.weight"} : f32[3,4]
  %up.1 = Constant() {weight="mlp.experts.1.up_proj.weight"} : f32[3,4]
  %down.1 = Constant() {weight="mlp.experts.1.down_proj.weight"} : f32[4,3]
  %moe = FusedMoE(%x, %ids, %wts, %gate.0, %gate.1, %up.0, %up.1, %down.0, %down.1) {num_experts=2, top_k=1} : f32[tokens,4]
  %out = Add(%moe, %x) : f32[tokens,4]
  return %out
})")));
}

// Each of these differs from the naive layer in one place; the pass must leave it alone.
TEST(MoeFuse, LeavesLayersThatDoNotMatchExactlyUntouched) {
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"%w1 = ExpertWeight(%ids, %wts) {expert=1}", "%w1 = ExpertWeight(%ids, %wts) {expert=0}"},  // expert 1 unused
      {"%out = Add(%sum, %x)", "%out = Add(%sum, %weighted0)"},  // a partial result read elsewhere
      {"%sum = Add(%weighted0, %weighted1)", "%sum = Add(%weighted1, %weighted0)"},  // another summation order
      {"%g1 = Linear(%x, %gate.1)", "%g1 = Linear(%y0, %gate.1)"},  // not a SwiGLU of x
      {"%h1 = Mul(%a1, %u1)", "%h1 = Add(%a1, %u1)"},
      {"%gate.1 = Constant() {weight=\"mlp.experts.1.gate_proj.weight\"} : f32[3,4]",
       "%gate.1 = Parameter() {name=\"gate.1\"} : f32[3,4]"},  // not a weight
  };
  MoeFuse pass;
  fixtures::ExpectEachEditIsLeftUntouched(kNaiveMoe, edits, pass);
}

TEST(MoeFuse, LeavesOneFusedMoEPerMoELayerAndTheSharedExperts) {
  for (const std::string preset : {"tiny-v2-lite", "tiny-v2", "tiny-v3", "bench-l4"}) {
    const models::DeepSeekConfig c = PresetConfig(preset);
    auto graph = NaiveGraph(c);
    int moe_layers = 0;
    for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) moe_layers += c.IsMoeLayer(layer);
    const int dense_layers = static_cast<int>(c.num_hidden_layers) - moe_layers;
    const int shared = c.n_shared_experts > 0 ? moe_layers : 0;
    EXPECT_EQ(OpCounts(*graph)["Silu"], dense_layers + shared + moe_layers * c.n_routed_experts);
    const int nodes_before = graph->num_nodes();
    MoeFuse pass;
    auto changed = RunPassThenDce(pass, *graph);
    ASSERT_TRUE(changed.ok()) << changed.status();
    EXPECT_TRUE(*changed);
    auto ops = OpCounts(*graph);
    EXPECT_EQ(ops["FusedMoE"], moe_layers);
    EXPECT_EQ(ops["Router"], moe_layers);
    EXPECT_EQ(ops["ExpertWeight"], 0);
    EXPECT_EQ(ops["Silu"], dense_layers + shared);  // dense and shared MLPs stay
    std::cout << preset << ": " << nodes_before << " -> " << graph->num_nodes() << " nodes\n";
  }
}

struct Case {
  std::string name;
  std::string preset;
  ir::DType dtype = ir::DType::kF32;
  int64_t shared_experts = -1;  // -1: the preset's
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

class MoeFuseNumerics : public ::testing::TestWithParam<Case> {};

// A prefill of 7 random tokens then 3 decode steps, before and after the pass, on the
// same random weights. FusedMoE rounds and sums as the per-expert graph does.
TEST_P(MoeFuseNumerics, KeepsTheLogitsOfPrefillAndDecode) {
  const Case& p = GetParam();
  models::DeepSeekConfig c = PresetConfig(p.preset);
  if (p.shared_experts >= 0) c.n_shared_experts = p.shared_experts;
  auto naive = NaiveGraph(c, p.dtype);
  auto fused = NaiveGraph(c, p.dtype);
  MoeFuse pass;
  auto changed = RunPassThenDce(pass, *fused);
  ASSERT_TRUE(changed.ok()) << changed.status();
  ASSERT_TRUE(*changed);
  fixtures::RandomWeights weights(*naive, /*seed=*/11);
  const auto prompt = fixtures::RandomIds(c.vocab_size, 7, 3);
  const auto decode = fixtures::RandomIds(c.vocab_size, 3, 4);
  auto before = fixtures::RunSteps(*naive, weights, prompt, decode);
  ASSERT_TRUE(before.ok()) << before.status();
  auto after = fixtures::RunSteps(*fused, weights, prompt, decode);
  ASSERT_TRUE(after.ok()) << after.status();
  const double diff = fixtures::MaxAbsDiff(*before, *after);
  std::cout << p.name << ": max |dlogit| " << diff << "\n";
  EXPECT_LE(diff, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    Configs, MoeFuseNumerics,
    ::testing::Values(Case{.name = "v2_lite_softmax_greedy_2_shared", .preset = "tiny-v2-lite"},
                      Case{.name = "v2_group_limited_1_shared", .preset = "tiny-v2"},
                      Case{.name = "v3_sigmoid_noaux_tc_bias", .preset = "tiny-v3"},
                      Case{.name = "no_shared_experts", .preset = "tiny-v2-lite", .shared_experts = 0},
                      Case{.name = "bf16", .preset = "tiny-v3", .dtype = ir::DType::kBF16}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace dsrt::passes
