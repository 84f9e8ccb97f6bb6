// The reference kernels on inputs small enough to check by hand.

#include "backends/reference/kernels.h"

#include <cmath>

#include "gtest/gtest.h"
#include "ir/builder.h"

namespace dsrt::backends::reference {
namespace {

using ir::DType;

Tensor Floats(std::vector<int64_t> dims, std::vector<float> values) {
  Tensor t;
  t.Allocate(DType::kF32, std::move(dims));
  t.f = std::move(values);
  return t;
}

Tensor Ints(std::vector<int64_t> dims, std::vector<int32_t> values) {
  Tensor t;
  t.Allocate(DType::kI32, std::move(dims));
  t.i = std::move(values);
  return t;
}

// Runs `op` as built by GraphBuilder over parameters of the given types, so the
// node carries exactly the attributes the model builder would give it.
struct OpRun {
  ir::Graph graph;
  std::vector<Tensor> outputs;

  absl::Status Run(const std::string& op, std::vector<const Tensor*> inputs, ir::AttrMap attrs,
                   KernelContext ctx = {}) {
    ir::GraphBuilder b(graph);
    std::vector<ir::Value*> params;
    for (size_t i = 0; i < inputs.size(); ++i) {
      params.push_back(b.Parameter("in" + std::to_string(i), ir::StaticType(inputs[i]->dtype, inputs[i]->dims)));
    }
    std::vector<ir::Value*> outs = b.MultiOp(op, params, std::move(attrs), {});
    if (!b.status().ok()) return b.status();
    outputs.resize(outs.size());
    std::vector<Tensor*> out_ptrs;
    for (Tensor& t : outputs) out_ptrs.push_back(&t);
    return Kernels().at(op)(*graph.nodes().back(), inputs, out_ptrs, ctx);
  }
};

ir::AttrMap RouterAttrs(std::string scoring, std::string method, int64_t top_k, int64_t n_group, int64_t topk_group,
                        bool normalize, double scaling) {
  return {{"scoring", scoring}, {"method", method},      {"top_k", top_k},     {"n_group", n_group},
          {"topk_group", topk_group}, {"normalize", int64_t{normalize}}, {"scaling", scaling}};
}

// x = [1] and an identity-like gate make the router logits equal the gate column.
Tensor OneToken() { return Floats({1, 1}, {1.0f}); }
Tensor Gate(std::vector<float> logits) { return Floats({static_cast<int64_t>(logits.size()), 1}, logits); }

TEST(Router, GreedySoftmaxPicksTheLargestScoresAndScales) {
  Tensor x = OneToken(), gate = Gate({0.0f, 2.0f, 1.0f, -1.0f});
  OpRun run;
  ASSERT_TRUE(run.Run("Router", {&x, &gate}, RouterAttrs("softmax", "greedy", 2, 1, 1, false, 2.0)).ok());
  const double z = std::exp(0.0) + std::exp(2.0) + std::exp(1.0) + std::exp(-1.0);
  EXPECT_EQ(run.outputs[0].i, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(run.outputs[1].f[0], 2.0 * std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(run.outputs[1].f[1], 2.0 * std::exp(1.0) / z, 1e-6);
}

TEST(Router, GroupLimitedGreedyOnlyChoosesFromTheBestGroups) {
  // Groups {0,1} {2,3} {4,5}: best-expert scores 0.9, 0.8, 0.85 → groups 0 and 2 survive,
  // so expert 3 (second best overall) is never chosen.
  Tensor x = OneToken(), gate = Gate({3.0f, 0.0f, 1.0f, 2.9f, 2.95f, 0.5f});
  OpRun run;
  ASSERT_TRUE(run.Run("Router", {&x, &gate}, RouterAttrs("softmax", "group_limited_greedy", 2, 3, 2, false, 1.0)).ok());
  EXPECT_EQ(run.outputs[0].i, (std::vector<int32_t>{0, 4}));
}

TEST(Router, NoauxTcSelectsByBiasedScoresButWeighsByUnbiasedOnes) {
  Tensor x = OneToken(), gate = Gate({0.0f, 0.0f, 0.0f, 0.0f});  // every sigmoid score is 0.5
  Tensor bias = Floats({4}, {0.0f, 0.3f, 0.0f, 0.2f});
  OpRun run;
  ASSERT_TRUE(run.Run("Router", {&x, &gate, &bias}, RouterAttrs("sigmoid", "noaux_tc", 2, 2, 1, true, 2.5)).ok());
  // Group {0,1} sums to 1.3, group {2,3} to 1.2: group 0 wins, so experts 0 and 1.
  EXPECT_EQ(run.outputs[0].i, (std::vector<int32_t>{1, 0}));
  // Renormalized unbiased scores 0.5/(0.5+0.5) times 2.5.
  EXPECT_NEAR(run.outputs[1].f[0], 1.25, 1e-6);
  EXPECT_NEAR(run.outputs[1].f[1], 1.25, 1e-6);
}

TEST(Rope, RotatesInterleavedPairsByPositionTimesFrequency) {
  Tensor x = Floats({1, 1, 4}, {1.0f, 0.0f, 0.0f, 1.0f});
  Tensor positions = Ints({1}, {2});
  OpRun run;
  ASSERT_TRUE(run.Run("Rope", {&x, &positions}, {{"inv_freq", std::vector<double>{0.5, 0.25}}}).ok());
  const std::vector<float>& y = run.outputs[0].f;
  EXPECT_NEAR(y[0], std::cos(1.0), 1e-6);   // (1, 0) rotated by 1 rad
  EXPECT_NEAR(y[1], std::sin(1.0), 1e-6);
  EXPECT_NEAR(y[2], -std::sin(0.5), 1e-6);  // (0, 1) rotated by 0.5 rad
  EXPECT_NEAR(y[3], std::cos(0.5), 1e-6);
}

TEST(Attention, AttendsOnlyToCachedPositionsUpToItsOwn) {
  CacheLayout layout{{2}, DType::kF32};  // 1 head, dk = dv = 1
  ContiguousKvCache cache(layout, 1, 8);
  // Two tokens: keys 0 and 0 (equal scores), values 1 and 3.
  Tensor q = Floats({2, 1, 1}, {1.0f, 1.0f}), k = Floats({2, 1, 1}, {0.0f, 0.0f}), v = Floats({2, 1, 1}, {1.0f, 3.0f});
  Tensor positions = Ints({2}, {0, 1});
  StepInput step = StepInput::ForSequence({5, 6}, 0);
  OpRun run;
  ASSERT_TRUE(run.Run("Attention", {&q, &k, &v, &positions}, {{"cache_slot", int64_t{0}}, {"scale", 1.0}},
                      KernelContext{&step, &cache})
                  .ok());
  EXPECT_FLOAT_EQ(run.outputs[0].f[0], 1.0f);  // position 0 sees only itself
  EXPECT_FLOAT_EQ(run.outputs[0].f[1], 2.0f);  // position 1 averages both
}

// 1 head, qk_nope 1, v 1, kv_lora_rank 2, rope 1. kv_b_weight rows: W_UK = [1, 0] (k_nope
// = c_kv[0]), W_UV = [0, 1] (v = c_kv[1]). Cache rows are [c_kv | k_pe].
TEST(MLAAttention, AttendsOverTheCachedLatentAndExpandsItPerHead) {
  CacheLayout layout{{3}, DType::kF32};
  ContiguousKvCache cache(layout, 1, 8);
  // Two tokens with equal scores (k_nope 0, k_pe 0): values 1 and 3.
  Tensor q_nope = Floats({2, 1, 1}, {1.0f, 1.0f}), q_pe = Floats({2, 1, 1}, {1.0f, 1.0f});
  Tensor c_kv = Floats({2, 2}, {0.0f, 1.0f, 0.0f, 3.0f}), k_pe = Floats({2, 1, 1}, {0.0f, 0.0f});
  Tensor kv_b = Floats({2, 2}, {1.0f, 0.0f, 0.0f, 1.0f});
  Tensor positions = Ints({2}, {0, 1});
  StepInput step = StepInput::ForSequence({5, 6}, 0);
  OpRun run;
  ASSERT_TRUE(run.Run("MLAAttention", {&q_nope, &q_pe, &c_kv, &k_pe, &kv_b, &positions},
                      {{"cache_slot", int64_t{0}}, {"scale", 1.0}, {"heads", int64_t{1}},
                       {"qk_nope_head_dim", int64_t{1}}, {"v_head_dim", int64_t{1}}},
                      KernelContext{&step, &cache})
                  .ok());
  EXPECT_FLOAT_EQ(run.outputs[0].f[0], 1.0f);  // position 0 sees only itself
  EXPECT_FLOAT_EQ(run.outputs[0].f[1], 2.0f);  // position 1 averages both
  const float* row1 = static_cast<const float*>(cache.Row(0, 0, 1));
  EXPECT_EQ(std::vector<float>(row1, row1 + 3), (std::vector<float>{0.0f, 3.0f, 0.0f}));
}

// Hidden 1, 2 experts of intermediate size 1, top-1: expert e computes silu(x) * x * (e + 1).
TEST(FusedMoE, RunsEachExpertOnItsTokensAndScalesByTheRoutingWeight) {
  Tensor x = Floats({2, 1}, {1.0f, 2.0f});
  Tensor ids = Ints({2, 1}, {1, 0}), weights = Floats({2, 1}, {0.5f, 0.25f});
  Tensor one = Floats({1, 1}, {1.0f}), two = Floats({1, 1}, {2.0f});
  OpRun run;
  ASSERT_TRUE(run.Run("FusedMoE", {&x, &ids, &weights, &one, &one, &one, &one, &one, &two},
                      {{"num_experts", int64_t{2}}, {"top_k", int64_t{1}}})
                  .ok());
  auto silu = [](double v) { return v / (1.0 + std::exp(-v)); };
  EXPECT_FLOAT_EQ(run.outputs[0].f[0], static_cast<float>(silu(1.0) * 1.0 * 2.0 * 0.5));   // token 0 → expert 1
  EXPECT_FLOAT_EQ(run.outputs[0].f[1], static_cast<float>(silu(2.0) * 2.0 * 1.0 * 0.25));  // token 1 → expert 0
}

TEST(Embedding, RefusesIdsOutsideTheTable) {
  Tensor table = Floats({2, 1}, {1.0f, 2.0f});
  Tensor ids = Ints({1}, {2});
  OpRun run;
  absl::Status s = run.Run("Embedding", {&table, &ids}, {{"dtype", std::string("f32")}});
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
}

TEST(Tensor, Bf16ValuesAreKeptRoundedToBf16) {
  Tensor t;
  t.Allocate(DType::kBF16, {1});
  t.f[0] = 1.00390625f;  // 1 + 2^-8: halfway between two bf16 values, rounds to even (1.0)
  t.RoundToDType();
  EXPECT_EQ(t.f[0], 1.0f);
}

}  // namespace
}  // namespace dsrt::backends::reference
