#ifndef DSRT_RUNTIME_SERVE_METRICS_H_
#define DSRT_RUNTIME_SERVE_METRICS_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace dsrt::runtime::serve {

// A Prometheus histogram: cumulative counts of observations ≤ each upper bound.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void Observe(double value);
  // The histogram in Prometheus text format under `name`.
  std::string Render(const std::string& name, const std::string& help) const;
  int64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket (not cumulative); the last is +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

// The scheduler's state at the end of its last step.
struct SchedulerGauges {
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t kv_pages_used = 0;
  int64_t kv_pages_free = 0;    // including the evictable ones
  int64_t kv_pages_evictable = 0;  // held by no request, kept for prefix reuse
  int64_t kv_page_tokens = 0;
};

// Cumulative token counts.
struct TokenCounters {
  int64_t prompt = 0;     // prompt tokens of admitted requests (each request once)
  int64_t generated = 0;
  int64_t prefilled = 0;  // prompt (or, after a preemption, recomputed) tokens the model ran
  // At every admission, the tokens looked up in the prefix cache and, of them, those
  // found there (whose rows were reused rather than prefilled).
  int64_t prefix_cache_queries = 0;
  int64_t prefix_cache_hits = 0;
};

// What /metrics reports. Thread-safe: the model thread records, HTTP threads render.
class ServeMetrics {
 public:
  ServeMetrics();
  void RecordPromptTokens(int64_t n);
  void RecordGeneratedTokens(int64_t n);
  void RecordPrefilledTokens(int64_t n);
  void RecordPrefixLookup(int64_t queried_tokens, int64_t hit_tokens);
  void RecordFinished(const std::string& reason);
  void RecordRejected();
  void RecordTimeToFirstToken(double seconds);
  void RecordTimePerOutputToken(double seconds);
  void SetGauges(const SchedulerGauges& gauges);
  SchedulerGauges gauges() const;
  TokenCounters counters() const;

  std::string RenderPrometheus() const;

 private:
  mutable std::mutex mu_;
  SchedulerGauges gauges_;
  TokenCounters tokens_;
  int64_t rejected_ = 0;
  int64_t finished_stop_ = 0, finished_length_ = 0, finished_cancelled_ = 0, finished_error_ = 0;
  Histogram ttft_, tpot_;
};

}  // namespace dsrt::runtime::serve

#endif  // DSRT_RUNTIME_SERVE_METRICS_H_
