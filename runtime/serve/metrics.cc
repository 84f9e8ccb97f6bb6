#include "runtime/serve/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dsrt::runtime::serve {

void Histogram::Observe(double value) {
  size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

std::string Histogram::Render(const std::string& name, const std::string& help) const {
  std::string out = absl::StrCat("# HELP ", name, " ", help, "\n# TYPE ", name, " histogram\n");
  int64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    absl::StrAppend(&out, name, "_bucket{le=\"", absl::StrFormat("%g", bounds_[i]), "\"} ", cumulative, "\n");
  }
  absl::StrAppend(&out, name, "_bucket{le=\"+Inf\"} ", count_, "\n");
  absl::StrAppend(&out, name, "_sum ", absl::StrFormat("%.9g", sum_), "\n", name, "_count ", count_, "\n");
  return out;
}

ServeMetrics::ServeMetrics()
    : ttft_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      tpot_({0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1}) {}

void ServeMetrics::RecordPromptTokens(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_.prompt += n;
}

void ServeMetrics::RecordGeneratedTokens(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_.generated += n;
}

void ServeMetrics::RecordPrefilledTokens(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_.prefilled += n;
}

void ServeMetrics::RecordPrefixLookup(int64_t queried_tokens, int64_t hit_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_.prefix_cache_queries += queried_tokens;
  tokens_.prefix_cache_hits += hit_tokens;
}

void ServeMetrics::RecordFinished(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (reason == "stop") ++finished_stop_;
  else if (reason == "length") ++finished_length_;
  else if (reason == "cancelled") ++finished_cancelled_;
  else ++finished_error_;
}

void ServeMetrics::RecordRejected() {
  std::lock_guard<std::mutex> lock(mu_);
  ++rejected_;
}

void ServeMetrics::RecordTimeToFirstToken(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ttft_.Observe(seconds);
}

void ServeMetrics::RecordTimePerOutputToken(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  tpot_.Observe(seconds);
}

void ServeMetrics::SetGauges(const SchedulerGauges& gauges) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_ = gauges;
}

SchedulerGauges ServeMetrics::gauges() const {
  std::lock_guard<std::mutex> lock(mu_);
  return gauges_;
}

TokenCounters ServeMetrics::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_;
}

namespace {

std::string Metric(const std::string& name, const std::string& type, const std::string& help, int64_t value) {
  return absl::StrCat("# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name, " ", value, "\n");
}

}  // namespace

std::string ServeMetrics::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  absl::StrAppend(&out, Metric("dsrt_requests_running", "gauge", "Requests in the running batch.", gauges_.running));
  absl::StrAppend(&out, Metric("dsrt_requests_waiting", "gauge", "Requests queued for admission.", gauges_.waiting));
  absl::StrAppend(&out, Metric("dsrt_kv_pages_used", "gauge", "KV cache pages held by requests.", gauges_.kv_pages_used));
  absl::StrAppend(&out, Metric("dsrt_kv_pages_free", "gauge", "KV cache pages free.", gauges_.kv_pages_free));
  absl::StrAppend(&out, Metric("dsrt_kv_pages_evictable", "gauge",
                               "Free KV pages whose rows are kept for prefix reuse.", gauges_.kv_pages_evictable));
  absl::StrAppend(&out, Metric("dsrt_kv_page_tokens", "gauge", "Tokens a KV page holds.", gauges_.kv_page_tokens));
  absl::StrAppend(&out, Metric("dsrt_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", tokens_.prompt));
  absl::StrAppend(&out, Metric("dsrt_generation_tokens_total", "counter", "Tokens generated.", tokens_.generated));
  absl::StrAppend(&out, Metric("dsrt_prefill_tokens_total", "counter",
                               "Prompt tokens the model computed (not found in the prefix cache).", tokens_.prefilled));
  absl::StrAppend(&out, Metric("dsrt_prefix_cache_queries_total", "counter",
                               "Tokens looked up in the prefix cache at admission.", tokens_.prefix_cache_queries));
  absl::StrAppend(&out, Metric("dsrt_prefix_cache_hits_total", "counter",
                               "Tokens found in the prefix cache at admission (their rows reused).",
                               tokens_.prefix_cache_hits));
  absl::StrAppend(&out, Metric("dsrt_requests_rejected_total", "counter", "Requests refused with a 4xx.", rejected_));
  absl::StrAppend(&out, "# HELP dsrt_requests_finished_total Requests that ended, by reason.\n",
                  "# TYPE dsrt_requests_finished_total counter\n");
  absl::StrAppend(&out, "dsrt_requests_finished_total{reason=\"stop\"} ", finished_stop_, "\n");
  absl::StrAppend(&out, "dsrt_requests_finished_total{reason=\"length\"} ", finished_length_, "\n");
  absl::StrAppend(&out, "dsrt_requests_finished_total{reason=\"cancelled\"} ", finished_cancelled_, "\n");
  absl::StrAppend(&out, "dsrt_requests_finished_total{reason=\"error\"} ", finished_error_, "\n");
  absl::StrAppend(&out, ttft_.Render("dsrt_time_to_first_token_seconds", "Time from arrival to the first token."));
  absl::StrAppend(&out, tpot_.Render("dsrt_time_per_output_token_seconds",
                                     "Mean time between a request's tokens after the first."));
  return out;
}

}  // namespace dsrt::runtime::serve
