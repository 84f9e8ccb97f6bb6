#include "runtime/sampler.h"

#include <map>

#include "gtest/gtest.h"

namespace dsrt::runtime {
namespace {

TEST(Sampler, GreedyTakesTheArgmax) {
  Sampler sampler({.greedy = true});
  EXPECT_EQ(sampler.Sample(std::vector<float>{0.1f, 2.0f, -1.0f}), 1);
}

TEST(Sampler, TopKOneIsGreedy) {
  Sampler sampler({.greedy = false, .temperature = 5.0, .top_k = 1, .seed = 9});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sampler.Sample(std::vector<float>{0.1f, 2.0f, 1.9f}), 1);
}

TEST(Sampler, TopPKeepsOnlyTheNucleus) {
  // Probabilities ≈ 0.84, 0.11, 0.04, 0.01: top_p 0.9 keeps the first two tokens only.
  Sampler sampler({.greedy = false, .temperature = 1.0, .top_p = 0.9, .seed = 3});
  std::map<int, int> seen;
  for (int i = 0; i < 500; ++i) ++seen[sampler.Sample(std::vector<float>{4.0f, 2.0f, 1.0f, -0.5f})];
  EXPECT_GT(seen[0], 350);
  EXPECT_GT(seen[1], 10);
  EXPECT_EQ(seen.count(2) + seen.count(3), 0u);
}

TEST(Sampler, SameSeedSameTokens) {
  const std::vector<float> logits = {1.0f, 1.1f, 0.9f, 1.05f};
  Sampler a({.greedy = false, .seed = 77}), b({.greedy = false, .seed = 77});
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.Sample(logits), b.Sample(logits));
}

TEST(SamplingParams, RejectsValuesAUserCanGetWrong) {
  EXPECT_FALSE(ValidateSamplingParams({.greedy = false, .temperature = 0.0}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.greedy = false, .top_p = 1.5}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.greedy = false, .top_k = -1}).ok());
  EXPECT_TRUE(ValidateSamplingParams({.greedy = false, .temperature = 0.7, .top_p = 0.95, .top_k = 50}).ok());
}

}  // namespace
}  // namespace dsrt::runtime
