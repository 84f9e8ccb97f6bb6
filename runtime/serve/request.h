#ifndef DSRT_RUNTIME_SERVE_REQUEST_H_
#define DSRT_RUNTIME_SERVE_REQUEST_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "runtime/sampler.h"

namespace dsrt::runtime::serve {

// One generation the scheduler runs: a prompt as token ids and how to continue it.
struct Request {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_tokens = 16;
  std::vector<std::string> stop;  // generation ends before the first of these strings
  bool stop_at_eos = true;
};

// What a request produced since the last Take: text that is final (never half a
// UTF-8 character, never the start of a possible stop string) and the tokens behind
// it. `finished` comes once, with the reason ("stop", "length", "cancelled") or an
// error in `status`.
struct Progress {
  std::string text;
  std::vector<int32_t> tokens;
  bool finished = false;
  std::string finish_reason;
  absl::Status status;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // so far, in total
};

// The two ends of one request: the scheduler's model thread publishes progress, the
// client's thread takes it, waiting when there is none, and may cancel.
class RequestChannel {
 public:
  explicit RequestChannel(int64_t prompt_tokens) { pending_.prompt_tokens = prompt_tokens; }

  // Waits up to `timeout` for new progress and takes it; `ready` is false when
  // nothing came. After the progress that says `finished`, nothing more comes.
  Progress Take(absl::Duration timeout, bool* ready);
  // Asks the scheduler to drop the request; it does so within one step.
  void Cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  // The scheduler's side.
  void Publish(const std::string& text, int32_t token);
  void Finish(const std::string& text, const std::string& reason, absl::Status status);

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  Progress pending_;
  bool has_news_ = false;
  bool closed_ = false;
  std::atomic<bool> cancelled_{false};
};

}  // namespace dsrt::runtime::serve

#endif  // DSRT_RUNTIME_SERVE_REQUEST_H_
