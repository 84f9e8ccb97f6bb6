#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dsrt::runtime {

absl::Status ValidateSamplingParams(const SamplingParams& params) {
  if (params.greedy) return absl::OkStatus();
  if (!(params.temperature > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be > 0 (got ", params.temperature,
                                                   "); use greedy decoding for temperature 0"));
  }
  if (!(params.top_p > 0.0 && params.top_p <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1] (got ", params.top_p, ")"));
  }
  if (params.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0 (got ", params.top_k, ")"));
  return absl::OkStatus();
}

int32_t Argmax(absl::Span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

namespace {

// Tokens that a nucleus is first looked for among: as a rule it is far smaller.
constexpr size_t kNucleusCandidates = 1024;

// exp((logit - max) / temperature) of `ids`, in their order.
std::vector<double> Weights(absl::Span<const float> logits, const std::vector<int32_t>& ids, double max_logit,
                            double temperature) {
  std::vector<double> weights(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) weights[i] = std::exp((logits[ids[i]] - max_logit) / temperature);
  return weights;
}

// The fewest leading tokens whose probability reaches top_p (all of them when it is not
// reached).
size_t NucleusSize(const std::vector<double>& weights, double total, double top_p) {
  double mass = 0;
  for (size_t n = 0; n < weights.size(); ++n) {
    mass += weights[n] / total;
    if (mass >= top_p) return n + 1;
  }
  return weights.size();
}

}  // namespace

int32_t Sampler::Sample(absl::Span<const float> logits) {
  if (params_.greedy) return Argmax(logits);
  const double max_logit = *std::max_element(logits.begin(), logits.end());
  const size_t vocab = logits.size();
  const size_t keep = params_.top_k > 0 ? std::min<size_t>(params_.top_k, vocab) : vocab;
  if (keep == vocab && params_.top_p >= 1.0) {
    // Every token can be drawn: no order needed, so none is made (a sort of the whole
    // vocabulary a token is what the server's batched steps would otherwise spend).
    std::vector<double> weights(vocab);
    for (size_t i = 0; i < vocab; ++i) weights[i] = std::exp((logits[i] - max_logit) / params_.temperature);
    std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
    return static_cast<int32_t>(pick(rng_));
  }
  // The kept tokens in order of logit (ties by id). The nucleus is a prefix of that
  // order: without top_k it is looked for among the best kNucleusCandidates first, and
  // everything is sorted only when it reaches past them.
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  auto higher = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  const size_t candidates = keep < vocab ? keep : std::min(vocab, kNucleusCandidates);
  std::partial_sort(order.begin(), order.begin() + candidates, order.end(), higher);
  std::vector<int32_t> best(order.begin(), order.begin() + candidates);
  std::vector<double> weights = Weights(logits, best, max_logit, params_.temperature);
  double total = 0;  // over the kept tokens
  if (keep < vocab) {
    total = std::accumulate(weights.begin(), weights.end(), 0.0);
  } else {
    for (float logit : logits) total += std::exp((logit - max_logit) / params_.temperature);
  }
  size_t nucleus = NucleusSize(weights, total, params_.top_p);
  if (nucleus == best.size() && best.size() < keep) {  // it may reach past the candidates
    std::sort(order.begin(), order.end(), higher);
    best.assign(order.begin(), order.begin() + keep);
    weights = Weights(logits, best, max_logit, params_.temperature);
    nucleus = NucleusSize(weights, total, params_.top_p);
  }
  std::discrete_distribution<size_t> pick(weights.begin(), weights.begin() + nucleus);
  return best[pick(rng_)];
}

}  // namespace dsrt::runtime
