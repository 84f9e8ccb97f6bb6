#include "passes/fuse_elementwise.h"

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

// A residual add feeding a norm, a SwiGLU MLP after it, a second residual add, and an
// absorbed attention whose q_pe and k_pe are rotated by Rope nodes.
constexpr char kUnfused[] = R"(graph main {
  %positions = Parameter() {name="positions"} : i32[tokens]
  %x = Parameter() {name="x"} : f32[tokens,4]
  %attn_out = Parameter() {name="attn_out"} : f32[tokens,4]
  %norm.w = Constant() {weight="norm.weight"} : f32[4]
  %gate.w = Constant() {weight="gate_proj.weight"} : f32[6,4]
  %up.w = Constant() {weight="up_proj.weight"} : f32[6,4]
  %down.w = Constant() {weight="down_proj.weight"} : f32[4,6]
  %h = Add(%x, %attn_out) : f32[tokens,4]
  %normed = RMSNorm(%h, %norm.w) {eps=1e-06} : f32[tokens,4]
  %g = Linear(%normed, %gate.w) : f32[tokens,6]
  %a = Silu(%g) : f32[tokens,6]
  %u = Linear(%normed, %up.w) : f32[tokens,6]
  %m = Mul(%u, %a) : f32[tokens,6]
  %y = Linear(%m, %down.w) : f32[tokens,4]
  %out = Add(%h, %y) : f32[tokens,4]
  %q_nope = Parameter() {name="q_nope"} : f32[tokens,2,2]
  %q = Parameter() {name="q"} : f32[tokens,2,2]
  %c_kv = Parameter() {name="c_kv"} : f32[tokens,4]
  %k = Parameter() {name="k"} : f32[tokens,1,2]
  %kv_b = Constant() {weight="kv_b_proj.weight"} : f32[10,4]
  %q_pe = Rope(%q, %positions) {inv_freq=[0.5], scale=1.25} : f32[tokens,2,2]
  %k_pe = Rope(%k, %positions) {inv_freq=[0.5], scale=1.25} : f32[tokens,1,2]
  %attn = MLAAttention(%q_nope, %q_pe, %c_kv, %k_pe, %kv_b, %positions) {cache_dtype="f32", cache_slot=0, heads=2, qk_nope_head_dim=2, scale=0.5, v_head_dim=3} : f32[tokens,2,3]
  return %out, %attn
})";

TEST(FuseElementwise, FusesSwiGluAddRmsNormAndRopeIntoAttention) {
  auto graph = ParseOrFail(kUnfused);
  const auto before = OpCounts(*graph);
  FuseElementwise pass;
  auto changed = fixtures::RunAndVerify(pass, *graph);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(ir::PrintGraph(*graph), ir::PrintGraph(*ParseOrFail(R"(graph main {
  %positions = Parameter() {name="positions"} : i32[tokens]
  %x = Parameter() {name="x"} : f32[tokens,4]
  %attn_out = Parameter() {name="attn_out"} : f32[tokens,4]
  %norm.w = Constant() {weight="norm.weight"} : f32[4]
  %gate.w = Constant() {weight="gate_proj.weight"} : f32[6,4]
  %up.w = Constant() {weight="up_proj.weight"} : f32[6,4]
  %down.w = Constant() {weight="down_proj.weight"} : f32[4,6]
  %q_nope = Parameter() {name="q_nope"} : f32[tokens,2,2]
  %q = Parameter() {name="q"} : f32[tokens,2,2]
  %c_kv = Parameter() {name="c_kv"} : f32[tokens,4]
  %k = Parameter() {name="k"} : f32[tokens,1,2]
  %kv_b = Constant() {weight="kv_b_proj.weight"} : f32[10,4]
  %h.fused, %normed.fused = AddRMSNorm(%x, %attn_out, %norm.w) {eps=1e-06} : f32[tokens,4], f32[tokens,4]
  %attn.rope = MLAAttention(%q_nope, %q, %c_kv, %k, %kv_b, %positions) {cache_dtype="f32", cache_slot=0, heads=2, qk_nope_head_dim=2, rope_inv_freq=[0.5], rope_scale=1.25, scale=0.5, v_head_dim=3} : f32[tokens,2,3]
  %g = Linear(%normed.fused, %gate.w) : f32[tokens,6]
  %u = Linear(%normed.fused, %up.w) : f32[tokens,6]
  %m.swiglu = SwiGLU(%g, %u) : f32[tokens,6]
  %y = Linear(%m.swiglu, %down.w) : f32[tokens,4]
  %out = Add(%h.fused, %y) : f32[tokens,4]
  return %out, %attn.rope
})")));
  const auto after = OpCounts(*graph);
  EXPECT_EQ(before.at("Add"), 2);
  EXPECT_EQ(after.at("Add"), 1);  // the last one feeds no norm
  EXPECT_EQ(after.at("AddRMSNorm"), 1);
  EXPECT_EQ(after.at("SwiGLU"), 1);
  for (const char* gone : {"RMSNorm", "Silu", "Mul", "Rope"}) EXPECT_EQ(after.count(gone), 0u) << gone;
  EXPECT_FALSE(*pass.Run(*graph));
}

TEST(FuseElementwise, LeavesSwiGluNearMissesUntouched) {
  FuseElementwise pass;
  fixtures::ExpectEachEditIsLeftUntouched(R"(graph main {
  %g = Parameter() {name="g"} : f32[tokens,6]
  %u = Parameter() {name="u"} : f32[tokens,6]
  %a = Silu(%g) : f32[tokens,6]
  %m = Mul(%u, %a) : f32[tokens,6]
  return %m
})",
                                          {
                                              {"return %m", "return %m, %a"},  // the Silu is read elsewhere too
                                              {"{name=\"u\"} : f32[tokens,6]", "{name=\"u\"} : f32[tokens,1]"},
                                              {"%m = Mul(%u, %a)", "%m = Add(%u, %a)"},
                                          },
                                          pass);
}

TEST(FuseElementwise, LeavesAddRmsNormNearMissesUntouched) {
  FuseElementwise pass;
  fixtures::ExpectEachEditIsLeftUntouched(R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,4]
  %r = Parameter() {name="r"} : f32[tokens,4]
  %w = Constant() {weight="norm.weight"} : f32[4]
  %h = Add(%x, %r) : f32[tokens,4]
  %n = RMSNorm(%h, %w) {eps=1e-06} : f32[tokens,4]
  return %n
})",
                                          {
                                              {"{name=\"r\"} : f32[tokens,4]", "{name=\"r\"} : f32[4]"},  // broadcasts
                                              {"%h = Add(%x, %r)", "%h = Mul(%x, %r)"},
                                              {"%n = RMSNorm(%h, %w)", "%n = RMSNorm(%x, %w)"},
                                          },
                                          pass);
}

TEST(FuseElementwise, LeavesRopeNearMissesUntouched) {
  FuseElementwise pass;
  fixtures::ExpectEachEditIsLeftUntouched(R"(graph main {
  %positions = Parameter() {name="positions"} : i32[tokens]
  %other = Parameter() {name="other_positions"} : i32[tokens]
  %q_nope = Parameter() {name="q_nope"} : f32[tokens,2,2]
  %q = Parameter() {name="q"} : f32[tokens,2,2]
  %c_kv = Parameter() {name="c_kv"} : f32[tokens,4]
  %k = Parameter() {name="k"} : f32[tokens,1,2]
  %kv_b = Constant() {weight="kv_b_proj.weight"} : f32[10,4]
  %q_pe = Rope(%q, %positions) {inv_freq=[0.5], scale=1.25} : f32[tokens,2,2]
  %k_pe = Rope(%k, %positions) {inv_freq=[0.5], scale=1.25} : f32[tokens,1,2]
  %attn = MLAAttention(%q_nope, %q_pe, %c_kv, %k_pe, %kv_b, %positions) {cache_dtype="f32", cache_slot=0, heads=2, qk_nope_head_dim=2, scale=0.5, v_head_dim=3} : f32[tokens,2,3]
  return %attn
})",
                                          {
                                              {"%k_pe = Rope(%k, %positions)", "%k_pe = Rope(%k, %other)"},
                                              {"%k_pe = Rope(%k, %positions) {inv_freq=[0.5]",
                                               "%k_pe = Rope(%k, %positions) {inv_freq=[0.25]"},
                                              {"%k_pe = Rope(%k, %positions) {inv_freq=[0.5], scale=1.25}",
                                               "%k_pe = Rope(%k, %positions) {inv_freq=[0.5]}"},
                                              {"%q_pe = Rope(%q, %positions) {inv_freq=[0.5], scale=1.25}",
                                               "%q_pe = Silu(%q)"},
                                          },
                                          pass);
}

struct Case {
  std::string preset;
  ir::DType dtype = ir::DType::kF32;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << c.preset << "_" << ir::DTypeName(c.dtype);
}

class FuseElementwiseModels : public ::testing::TestWithParam<Case> {};

// On whole models after mla-absorb and moe-fuse: every SwiGLU MLP, every residual add
// before a norm and every attention's RoPE fused, and the logits bit for bit the same.
TEST_P(FuseElementwiseModels, FusesEveryLayerAndKeepsTheLogitsExactly) {
  const Case& p = GetParam();
  const models::DeepSeekConfig c = fixtures::PresetConfig(p.preset);
  auto before = fixtures::GraphBeforePass(c, "fuse-elementwise", p.dtype);
  auto after = fixtures::CloneGraph(*before);
  FuseElementwise pass;
  auto changed = fixtures::RunAndVerify(pass, *after);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);

  int64_t moe_layers = 0;
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) moe_layers += c.IsMoeLayer(layer);
  const int64_t layers = c.num_hidden_layers;
  const int64_t mlps = layers - moe_layers + (c.n_shared_experts > 0 ? moe_layers : 0);
  auto ops_before = OpCounts(*before);
  auto ops = OpCounts(*after);
  EXPECT_EQ(ops["SwiGLU"], mlps);
  EXPECT_EQ(ops["AddRMSNorm"], 2 * layers);  // after attention, and before the next layer (or the final norm)
  EXPECT_EQ(ops["Add"], ops_before["Add"] - 2 * layers);  // routed + shared expert sums stay
  EXPECT_EQ(ops["RMSNorm"], ops_before["RMSNorm"] - 2 * layers);  // layer 0's input norm, c_kv's, q_a's
  EXPECT_EQ(ops["Silu"], 0);
  EXPECT_EQ(ops["Mul"], 0);
  EXPECT_EQ(ops["Rope"], 0);
  EXPECT_EQ(ops["MLAAttention"], layers);
  for (const auto& node : after->nodes()) {
    if (node->op() == "MLAAttention") {
      EXPECT_TRUE(node->attrs().Has("rope_inv_freq"));
    }
  }
  std::cout << p << ": " << before->num_nodes() << " -> " << after->num_nodes() << " nodes\n";

  auto diff = fixtures::LogitDifference(*before, *after, c.vocab_size);
  ASSERT_TRUE(diff.ok()) << diff.status();
  EXPECT_EQ(*diff, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Presets, FuseElementwiseModels,
                         ::testing::Values(Case{"tiny-v2-lite"}, Case{"tiny-v2"}, Case{"tiny-v3"},
                                           Case{"tiny-v2", ir::DType::kBF16}, Case{"tiny-v3", ir::DType::kBF16}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string name = info.param.preset + "_" + std::string(ir::DTypeName(info.param.dtype));
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace dsrt::passes
