#include "passes/mla_absorb.h"

#include <iostream>

#include "gtest/gtest.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "tests/passes/pass_test_util.h"

namespace dsrt::passes {
namespace {

using fixtures::KvBytesPerToken;
using fixtures::NaiveGraph;
using fixtures::OpCounts;
using fixtures::PresetConfig;
using fixtures::RunPassThenDce;

std::unique_ptr<ir::Graph> Parse(absl::string_view text) {
  auto graph = ir::ParseGraph(text);
  EXPECT_TRUE(graph.ok()) << graph.status();
  return std::move(graph).value();
}

// One naive MLA block: 2 heads, qk_nope 2, qk_rope 2, v 3, kv_lora_rank 4.
constexpr char kNaiveBlock[] = R"(graph main {
  %positions = Parameter() {name="positions"} : i32[tokens]
  %q_nope = Parameter() {name="q_nope"} : f32[tokens,2,2]
  %q_pe = Parameter() {name="q_pe"} : f32[tokens,2,2]
  %c_kv = Parameter() {name="c_kv"} : f32[tokens,4]
  %k_pe = Parameter() {name="k_pe"} : f32[tokens,1,2]
  %kv_b = Constant() {weight="kv_b_proj.weight"} : f32[10,4]
  %kv_flat = Linear(%c_kv, %kv_b) : f32[tokens,10]
  %kv = Reshape(%kv_flat) {shape=[0,2,5]} : f32[tokens,2,5]
  %k_nope = Slice(%kv) {axis=2, end=2, start=0} : f32[tokens,2,2]
  %v = Slice(%kv) {axis=2, end=5, start=2} : f32[tokens,2,3]
  %query = Concat(%q_nope, %q_pe) {axis=2} : f32[tokens,2,4]
  %k_pe_heads = Expand(%k_pe) {shape=[0,2,0]} : f32[tokens,2,2]
  %key = Concat(%k_nope, %k_pe_heads) {axis=2} : f32[tokens,2,4]
  %attn = Attention(%query, %key, %v, %positions) {cache_dtype="bf16", cache_slot=0, scale=0.5} : f32[tokens,2,3]
  %out = Reshape(%attn) {shape=[0,6]} : f32[tokens,6]
  return %out
})";

TEST(MlaAbsorb, RewritesTheNaiveBlockIntoOneLatentAttention) {
  auto graph = Parse(kNaiveBlock);
  EXPECT_EQ(KvBytesPerToken(*graph), 2 * 2 * (2 + 2 + 3));  // bf16 k and v per head
  MlaAbsorb pass;
  auto changed = pass.Run(*graph);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  ASSERT_TRUE(ir::VerifyGraph(*graph).ok());
  EXPECT_EQ(ir::PrintGraph(*graph), ir::PrintGraph(*Parse(R"(graph main {
  %positions = Parameter() {name="positions"} : i32[tokens]
  %q_nope = Parameter() {name="q_nope"} : f32[tokens,2,2]
  %q_pe = Parameter() {name="q_pe"} : f32[tokens,2,2]
  %c_kv = Parameter() {name="c_kv"} : f32[tokens,4]
  %k_pe = Parameter() {name="k_pe"} : f32[tokens,1,2]
  %kv_b = Constant() {weight="kv_b_proj.weight"} : f32[10,4]
  %attn.mla = MLAAttention(%q_nope, %q_pe, %c_kv, %k_pe, %kv_b, %positions) {cache_dtype="bf16", cache_slot=0, heads=2, qk_nope_head_dim=2, scale=0.5, v_head_dim=3} : f32[tokens,2,3]
  %out = Reshape(%attn.mla) {shape=[0,6]} : f32[tokens,6]
  return %out
})")));
  EXPECT_EQ(KvBytesPerToken(*graph), 2 * (4 + 2));  // bf16 [c_kv | k_pe], shared by the heads
}

// Each of these differs from the naive block in one place; the pass must leave it alone.
// (Names never matter: Concat(%q_pe, %q_nope) of equal widths is still an MLA block whose
// first half meets k_nope, and the pass rewrites it as such.)
TEST(MlaAbsorb, LeavesBlocksThatDoNotMatchExactlyUntouched) {
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"%k_nope = Slice(%kv) {axis=2, end=2, start=0}", "%k_nope = Slice(%kv) {axis=2, end=4, start=2}"},
      {"%v = Slice(%kv) {axis=2, end=5, start=2}", "%v = Slice(%kv) {axis=2, end=3, start=0}"},
      {"%key = Concat(%k_nope, %k_pe_heads)", "%key = Concat(%k_pe_heads, %k_nope)"},
      {"%kv_b = Constant() {weight=\"kv_b_proj.weight\"} : f32[10,4]",
       "%kv_b = Parameter() {name=\"kv_b\"} : f32[10,4]"},  // not a weight
      {"%k_pe_heads = Expand(%k_pe) {shape=[0,2,0]} : f32[tokens,2,2]",
       "%k_pe_heads = Slice(%q_pe) {axis=2, end=2, start=0} : f32[tokens,2,2]"},  // not one shared k_pe
  };
  MlaAbsorb pass;
  fixtures::ExpectEachEditIsLeftUntouched(kNaiveBlock, edits, pass);
}

TEST(MlaAbsorb, ShrinksTheKvCacheOfEveryLayerToTheLatent) {
  for (const std::string preset : {"tiny-v2-lite", "tiny-v2", "tiny-v3", "bench-l4"}) {
    for (ir::DType dtype : {ir::DType::kF32, ir::DType::kBF16}) {
      const models::DeepSeekConfig c = PresetConfig(preset);
      auto graph = NaiveGraph(c, dtype);
      const int64_t bytes = ir::DTypeBytes(dtype, 1);
      const int64_t layers = c.num_hidden_layers, heads = c.num_attention_heads;
      const int64_t before = KvBytesPerToken(*graph);
      EXPECT_EQ(before, layers * heads * (c.qk_head_dim() + c.v_head_dim) * bytes);
      MlaAbsorb pass;
      auto changed = RunPassThenDce(pass, *graph);
      ASSERT_TRUE(changed.ok()) << changed.status();
      EXPECT_TRUE(*changed);
      const int64_t after = KvBytesPerToken(*graph);
      EXPECT_EQ(after, layers * (c.kv_lora_rank + c.qk_rope_head_dim) * bytes);
      auto ops = OpCounts(*graph);
      EXPECT_EQ(ops["MLAAttention"], layers);
      EXPECT_EQ(ops["Attention"], 0);
      EXPECT_EQ(ops["Expand"], 0);
      EXPECT_EQ(ops["Concat"], 0);
      std::cout << preset << " " << ir::DTypeName(dtype) << ": KV cache " << before << " -> " << after
                << " bytes/token (" << 100.0 * (before - after) / before << "% smaller)\n";
    }
  }
}

TEST(MlaAbsorb, NeverFoldsWuvIntoOProjForDeepSeekShapes) {
  // hidden, heads, v_head_dim, kv_lora_rank
  EXPECT_FALSE(FoldingWuvIntoOProjSavesMacs(5120, 128, 128, 512));  // V2 / V3
  EXPECT_FALSE(FoldingWuvIntoOProjSavesMacs(2048, 16, 128, 512));   // V2-Lite
  EXPECT_FALSE(FoldingWuvIntoOProjSavesMacs(64, 4, 16, 32));        // tiny-v2-lite
  EXPECT_TRUE(FoldingWuvIntoOProjSavesMacs(64, 4, 64, 16));         // a latent narrower than v
}

struct Case {
  std::string name;
  std::string preset;
  ir::DType dtype = ir::DType::kF32;
  int64_t v_head_dim = 0;        // 0: the preset's
  int64_t shared_experts = -1;   // -1: the preset's
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

class MlaAbsorbNumerics : public ::testing::TestWithParam<Case> {};

// A prefill of 7 random tokens then 3 decode steps through the KV cache, before and
// after the pass, on the same random weights.
TEST_P(MlaAbsorbNumerics, KeepsTheLogitsOfPrefillAndDecode) {
  const Case& p = GetParam();
  models::DeepSeekConfig c = PresetConfig(p.preset);
  if (p.v_head_dim > 0) c.v_head_dim = p.v_head_dim;
  if (p.shared_experts >= 0) c.n_shared_experts = p.shared_experts;
  auto naive = NaiveGraph(c, p.dtype);
  auto absorbed = NaiveGraph(c, p.dtype);
  MlaAbsorb pass;
  auto changed = RunPassThenDce(pass, *absorbed);
  ASSERT_TRUE(changed.ok()) << changed.status();
  ASSERT_TRUE(*changed);
  fixtures::RandomWeights weights(*naive, /*seed=*/7);
  const auto prompt = fixtures::RandomIds(c.vocab_size, 7, 1);
  const auto decode = fixtures::RandomIds(c.vocab_size, 3, 2);
  auto before = fixtures::RunSteps(*naive, weights, prompt, decode);
  ASSERT_TRUE(before.ok()) << before.status();
  auto after = fixtures::RunSteps(*absorbed, weights, prompt, decode);
  ASSERT_TRUE(after.ok()) << after.status();
  const double diff = fixtures::MaxAbsDiff(*before, *after);
  std::cout << p.name << ": max |dlogit| " << diff << "\n";
  if (p.dtype == ir::DType::kF32) {
    EXPECT_LE(diff, 1e-4);
    return;
  }
  // A bf16 cache rounds c_kv and k_pe where the naive graph rounds k and v: the two
  // differ by bf16 rounding. Both must stay as close to an exact (f32) cache.
  auto exact = NaiveGraph(c, p.dtype);
  for (const auto& node : exact->nodes()) {
    if (node->op() == "Attention") node->mutable_attrs().Set("cache_dtype", std::string("f32"));
  }
  auto reference = fixtures::RunSteps(*exact, weights, prompt, decode);
  ASSERT_TRUE(reference.ok()) << reference.status();
  const double naive_error = fixtures::MaxAbsDiff(*before, *reference);
  const double absorbed_error = fixtures::MaxAbsDiff(*after, *reference);
  std::cout << p.name << ": max |dlogit| from an f32 cache: naive " << naive_error << ", absorbed " << absorbed_error
            << "\n";
  EXPECT_LE(absorbed_error, 2 * naive_error + 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    Configs, MlaAbsorbNumerics,
    ::testing::Values(Case{.name = "v2_lite_plain_q", .preset = "tiny-v2-lite"},
                      Case{.name = "v2_q_lora_v_wider_than_nope", .preset = "tiny-v2"},
                      Case{.name = "v3_sigmoid_noaux", .preset = "tiny-v3"},
                      Case{.name = "v_narrower_than_nope", .preset = "tiny-v2-lite", .v_head_dim = 8},
                      Case{.name = "bf16_cache", .preset = "tiny-v2", .dtype = ir::DType::kBF16},
                      Case{.name = "bf16_cache_v3", .preset = "tiny-v3", .dtype = ir::DType::kBF16}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace dsrt::passes
