#ifndef DSRT_RUNTIME_SAMPLER_H_
#define DSRT_RUNTIME_SAMPLER_H_

#include <cstdint>
#include <random>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace dsrt::runtime {

struct SamplingParams {
  bool greedy = true;
  double temperature = 1.0;
  double top_p = 1.0;  // nucleus: the smallest set of tokens whose probability reaches top_p
  int64_t top_k = 0;   // 0: all tokens
  uint64_t seed = 0;
};

// Rejects values a user can get wrong (temperature ≤ 0 without greedy, top_p outside (0, 1]).
absl::Status ValidateSamplingParams(const SamplingParams& params);

// Picks the next token from one row of logits. Deterministic for a seed: the same
// seed and logits give the same tokens on every rank and every run.
class Sampler {
 public:
  explicit Sampler(SamplingParams params) : params_(params), rng_(params.seed) {}
  int32_t Sample(absl::Span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

int32_t Argmax(absl::Span<const float> logits);

}  // namespace dsrt::runtime

#endif  // DSRT_RUNTIME_SAMPLER_H_
