#ifndef DSRT_RUNTIME_BENCH_H_
#define DSRT_RUNTIME_BENCH_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "backends/communicator.h"
#include "nlohmann/json.hpp"

namespace dsrt::runtime {

struct BenchOptions {
  std::string engine_path;
  std::string backend = "onednn";
  int threads = 0;
  int64_t batch = 1;         // sequences decoded together
  int64_t input_len = 128;   // prompt tokens per sequence
  int64_t output_len = 128;  // generated tokens per sequence
  int64_t warmup = 1;        // untimed rounds first (primitives made, caches warm)
  uint64_t seed = 0;         // of the random prompts
  bool roofline = false;     // measure memory read bandwidth around the decode run
  backends::Communicator* communicator = nullptr;  // a partitioned engine's ranks (see SessionOptions)
  std::function<void(const std::string& stage, int64_t done, int64_t total)> progress;
};

// What `dsrt bench` measures: one batched prefill of every prompt, then output_len - 1
// decode steps of `batch` tokens each, greedy. Like vLLM's benchmark_latency.
struct BenchResult {
  double load_ms = 0;     // map the engine, read its graph
  double compile_ms = 0;  // weight packing and kernel set-up, once per process
  double prefill_tokens_per_s = 0;
  double decode_tokens_per_s = 0;  // all sequences together
  double ttft_ms = 0;              // the prefill step, first token sampled
  double tpot_ms = 0;              // per decode step (= per token of one sequence)
  int64_t peak_rss_bytes = 0;
  int64_t weight_bytes = 0;
  int64_t kv_cache_bytes_per_token = 0;
  // Bytes a decode step must read: every dense weight, the experts the batch's tokens
  // are expected to pick (uniform routing), one embedding row a token, and the KV cache.
  int64_t decode_bytes_per_step = 0;
  // A partitioned engine's exchanges, per decode token: the collectives each rank joins
  // and the f32 bytes it contributes to them (AllReduce payload, AllGather piece).
  int64_t collectives_per_token = 0;
  int64_t collective_bytes_per_token = 0;
  int world_size = 1;
  // With `roofline`: the best read bandwidth measured just before and after decoding,
  // the decode tokens/s it allows, and the measured fraction of that.
  double read_bandwidth_gb_s = 0;
  double roofline_decode_tokens_per_s = 0;
  double roofline_fraction = 0;
  int64_t batch = 0, input_len = 0, output_len = 0;
  std::string backend;
  int threads = 0;

  nlohmann::json ToJson() const;
};

absl::StatusOr<BenchResult> RunBench(const BenchOptions& options);

// Memory read bandwidth in GB/s: the best of `repeats` parallel sums over a buffer far
// larger than the caches, as ../shared/tools/stream.c's "read" measures it.
double MeasureReadBandwidth(int repeats = 5);

// The process's peak resident set (VmHWM), in bytes; 0 when it cannot be read.
int64_t PeakRssBytes();

}  // namespace dsrt::runtime

#endif  // DSRT_RUNTIME_BENCH_H_
