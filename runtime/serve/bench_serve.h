#ifndef DSRT_RUNTIME_SERVE_BENCH_SERVE_H_
#define DSRT_RUNTIME_SERVE_BENCH_SERVE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace dsrt::runtime::serve {

struct BenchServeOptions {
  std::string url = "http://127.0.0.1:8000";  // the server's base: http://HOST:PORT[/PREFIX]
  std::vector<int> concurrency = {1, 4, 16};   // one run per level
  int64_t num_prompts = 64;                    // requests per level
  int64_t input_len = 256;                     // prompt tokens per request
  int64_t output_len = 64;                     // generated tokens per request
  std::string api_key;                         // empty: no Authorization header
  std::string model;                           // empty: the first model /v1/models lists
  int64_t vocab_size = 0;                      // 0: /v1/models's vocab_size
  uint64_t seed = 0;                           // of the random prompts
  std::function<void(const std::string& stage, int64_t done, int64_t total)> progress;
};

// Mean, median and 99th percentile of a set of durations, in milliseconds.
struct LatencyStats {
  double mean_ms = 0, median_ms = 0, p99_ms = 0;
};
LatencyStats Summarize(std::vector<double> values_ms);

// What one concurrency level measured, as vLLM's benchmark_serving.py reports it.
struct BenchServeResult {
  int concurrency = 0;
  int64_t completed = 0;
  int64_t failed = 0;
  std::string first_error;  // of the first failed request; empty when none failed
  int64_t total_input_tokens = 0, total_output_tokens = 0;  // from the server's usage
  double duration_s = 0;
  double request_throughput = 0;      // completed requests a second
  double output_throughput = 0;       // generated tokens a second
  double total_token_throughput = 0;  // prompt and generated tokens a second
  LatencyStats ttft;  // time to the first streamed token
  LatencyStats tpot;  // (latency - TTFT) / (output tokens - 1), of requests with more than one
  LatencyStats itl;   // between consecutive streamed chunks, over every request
  LatencyStats e2el;  // a request's whole latency

  // snake_case keys as vLLM's --save-result writes them: completed, duration_s,
  // request_throughput, mean_ttft_ms, median_ttft_ms, p99_ttft_ms, ...
  nlohmann::json ToJson() const;
};

// A load generator in the manner of vLLM's benchmarks/benchmark_serving.py: for each
// concurrency level, num_prompts streaming /v1/completions requests of input_len random
// token ids each (fresh prompts every level, so that no level reuses another's cached
// prefixes), max_tokens = output_len with ignore_eos so that every answer has exactly
// that length, greedy, keeping `concurrency` requests in flight. An error when the
// server cannot be reached or cannot run such requests; a level whose every request
// failed is an error naming the first failure.
absl::StatusOr<std::vector<BenchServeResult>> RunBenchServe(const BenchServeOptions& options);

}  // namespace dsrt::runtime::serve

#endif  // DSRT_RUNTIME_SERVE_BENCH_SERVE_H_
