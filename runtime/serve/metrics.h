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
  int64_t kv_pages_free = 0;
  int64_t kv_page_tokens = 0;
};

// What /metrics reports. Thread-safe: the model thread records, HTTP threads render.
class ServeMetrics {
 public:
  ServeMetrics();
  void RecordPromptTokens(int64_t n);
  void RecordGeneratedTokens(int64_t n);
  void RecordFinished(const std::string& reason);
  void RecordRejected();
  void RecordTimeToFirstToken(double seconds);
  void RecordTimePerOutputToken(double seconds);
  void SetGauges(const SchedulerGauges& gauges);
  SchedulerGauges gauges() const;

  std::string RenderPrometheus() const;

 private:
  mutable std::mutex mu_;
  SchedulerGauges gauges_;
  int64_t prompt_tokens_ = 0, generated_tokens_ = 0, rejected_ = 0;
  int64_t finished_stop_ = 0, finished_length_ = 0, finished_cancelled_ = 0, finished_error_ = 0;
  Histogram ttft_, tpot_;
};

}  // namespace dsrt::runtime::serve

#endif  // DSRT_RUNTIME_SERVE_METRICS_H_
