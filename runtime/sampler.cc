#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
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

int32_t Sampler::Sample(absl::Span<const float> logits) {
  if (params_.greedy) return Argmax(logits);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t keep = params_.top_k > 0 ? std::min<size_t>(params_.top_k, logits.size()) : logits.size();
  auto higher = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  // The order is total (ties broken by id), so a full sort gives partial_sort's order, several times faster.
  if (keep == logits.size()) {
    std::sort(order.begin(), order.end(), higher);
  } else {
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), higher);
  }
  order.resize(keep);

  std::vector<double> probs(keep);
  const double max_logit = logits[order[0]];
  double total = 0;
  for (size_t i = 0; i < keep; ++i) total += probs[i] = std::exp((logits[order[i]] - max_logit) / params_.temperature);
  size_t nucleus = 0;
  double mass = 0;
  while (nucleus < keep) {
    mass += probs[nucleus++] / total;
    if (mass >= params_.top_p) break;
  }
  std::discrete_distribution<size_t> pick(probs.begin(), probs.begin() + nucleus);
  return order[pick(rng_)];
}

}  // namespace dsrt::runtime
