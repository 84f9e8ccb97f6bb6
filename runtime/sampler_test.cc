#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

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

// What Sample did before it looked for the nucleus among the best tokens first: sort
// every kept token, take the nucleus, draw from it.
int32_t SampleBySortingEverything(absl::Span<const float> logits, const SamplingParams& params, std::mt19937_64& rng) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  order.resize(params.top_k > 0 ? std::min<size_t>(params.top_k, order.size()) : order.size());
  std::vector<double> weights;
  for (int32_t id : order) weights.push_back(std::exp((logits[id] - logits[order[0]]) / params.temperature));
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  size_t nucleus = 0;
  double mass = 0;
  while (nucleus < order.size()) {
    mass += weights[nucleus++] / total;
    if (mass >= params.top_p) break;
  }
  std::discrete_distribution<size_t> pick(weights.begin(), weights.begin() + nucleus);
  return order[pick(rng)];
}

TEST(Sampler, NucleusAmongTheBestTokensIsTheNucleusOfAll) {
  // A vocabulary of 5000: a flat one (the nucleus reaches past the first 1024 tokens) and
  // a peaked one (it does not); top_k below and above 1024.
  std::mt19937_64 gen(1);
  std::normal_distribution<float> normal;
  std::vector<float> flat(5000), peaked(5000);
  for (size_t i = 0; i < flat.size(); ++i) {
    flat[i] = 0.1f * normal(gen);
    peaked[i] = 4.0f * normal(gen);
  }
  for (const std::vector<float>* logits : {&flat, &peaked}) {
    for (SamplingParams params : {SamplingParams{.greedy = false, .top_p = 0.9, .seed = 5},
                                  SamplingParams{.greedy = false, .temperature = 0.7, .top_p = 0.5, .top_k = 50, .seed = 6},
                                  SamplingParams{.greedy = false, .top_p = 0.95, .top_k = 3000, .seed = 7},
                                  SamplingParams{.greedy = false, .top_k = 2000, .seed = 8}}) {
      Sampler sampler(params);
      std::mt19937_64 rng(params.seed);
      for (int i = 0; i < 30; ++i) EXPECT_EQ(sampler.Sample(*logits), SampleBySortingEverything(*logits, params, rng));
    }
  }
}

TEST(SamplingParams, RejectsValuesAUserCanGetWrong) {
  EXPECT_FALSE(ValidateSamplingParams({.greedy = false, .temperature = 0.0}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.greedy = false, .top_p = 1.5}).ok());
  EXPECT_FALSE(ValidateSamplingParams({.greedy = false, .top_k = -1}).ok());
  EXPECT_TRUE(ValidateSamplingParams({.greedy = false, .temperature = 0.7, .top_p = 0.95, .top_k = 50}).ok());
}

}  // namespace
}  // namespace dsrt::runtime
