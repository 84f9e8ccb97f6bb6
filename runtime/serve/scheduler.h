#ifndef DSRT_RUNTIME_SERVE_SCHEDULER_H_
#define DSRT_RUNTIME_SERVE_SCHEDULER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "backends/paged_kv_cache.h"
#include "runtime/serve/metrics.h"
#include "runtime/serve/request.h"
#include "runtime/session.h"
#include "runtime/text_generation.h"

namespace dsrt::runtime::serve {

struct SchedulerOptions {
  // Tokens one step may hold: every decoding sequence's one token, then chunks of
  // the prompts being prefilled, so a long prompt never stalls the running streams.
  int64_t max_step_tokens = 256;
  int64_t max_waiting = 1024;  // more queued requests are refused
  // Reuse the KV pages of a prompt's leading full pages when another request (running
  // or finished) computed the same tokens (see PagedKvCache's prefix caching).
  bool prefix_caching = true;
};

// Continuous (inflight) batching over a Session with a paged KV cache (Orca, vLLM):
// at every step it admits waiting requests while their prompts fit in free pages,
// runs one batch holding a token of every decoding sequence plus prompt chunks,
// samples each sequence with its own seeded sampler, streams text through each
// request's channel and retires what finished or was cancelled, freeing its pages.
// When a growing sequence finds no free page, the most recently admitted one is
// preempted: its pages are freed and it waits at the head of the queue, to be
// recomputed from its prompt and the tokens it already produced.
//
// With prefix caching, a request's full pages are published as they are computed and
// outlive it (evictable) once it ends; an admitted request adopts the published pages
// that hold its leading tokens and prefills only the rest, always at least its last
// token, whose logits give its first generated one.
//
// Submit may be called from any thread; Step (or the loop of Start) runs on one.
class Scheduler {
 public:
  // The session must have been opened with a paged KV cache (kv_cache_bytes > 0);
  // its max_sequences is the largest batch.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(Session& session, const SchedulerOptions& options,
                                                           ServeMetrics* metrics);
  ~Scheduler();

  // Queues a request. Refused at once when it could never run: an empty prompt, an
  // id outside the vocabulary, a prompt longer than the engine's max sequence length
  // or than the whole KV cache, bad sampling parameters, max_tokens ≤ 0.
  absl::StatusOr<std::shared_ptr<RequestChannel>> Submit(Request request);

  // One step: admit, run the batch, sample, retire. False when there was nothing to do.
  absl::StatusOr<bool> Step();

  // Runs steps on a thread of its own until Stop; idle, it sleeps until a request comes.
  void Start();
  // Ends the loop; requests still queued or running finish with an error.
  void Stop();

  SchedulerGauges gauges() const { return metrics_->gauges(); }
  TokenCounters counters() const { return metrics_->counters(); }

 private:
  struct Sequence;
  Scheduler(Session& session, backends::PagedKvCache& cache, const text::Tokenizer* tokenizer,
            const SchedulerOptions& options, ServeMetrics* metrics);

  absl::Status Validate(const Request& request) const;
  void TakeIncoming();
  void RetireCancelled();
  void Admit();
  bool Place(Sequence& sequence, int slot, int64_t active);
  bool ReserveDecodePage(Sequence& sequence);
  void Preempt(Sequence& sequence);
  void Retire(Sequence& sequence, const std::string& reason, absl::Status status);
  void SampleAndStream(Sequence& sequence, const float* logits, int64_t vocab);
  void PublishGauges();
  void FailAll(const absl::Status& status);

  Session& session_;
  backends::PagedKvCache& cache_;
  const text::Tokenizer* tokenizer_;  // nullptr: the engine has none (no text, no stop strings)
  SchedulerOptions options_;
  ServeMetrics* metrics_;

  std::mutex mu_;  // guards incoming_ and stopping_
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Sequence>> incoming_;
  bool stopping_ = false;

  // Owned by the thread that runs Step.
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order
  std::vector<int> free_slots_;
  std::thread loop_;
};

}  // namespace dsrt::runtime::serve

#endif  // DSRT_RUNTIME_SERVE_SCHEDULER_H_
