#include "runtime/serve/request.h"

#include <chrono>

namespace dsrt::runtime::serve {

Progress RequestChannel::Take(absl::Duration timeout, bool* ready) {
  std::unique_lock<std::mutex> lock(mu_);
  *ready = changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return has_news_; });
  if (!*ready) return {};
  Progress taken = std::move(pending_);
  pending_ = Progress{};
  pending_.prompt_tokens = taken.prompt_tokens;
  pending_.completion_tokens = taken.completion_tokens;
  has_news_ = false;
  return taken;
}

void RequestChannel::Publish(const std::string& text, int32_t token) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  pending_.text += text;
  pending_.tokens.push_back(token);
  ++pending_.completion_tokens;
  has_news_ = true;
  changed_.notify_all();
}

void RequestChannel::Finish(const std::string& text, const std::string& reason, absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  closed_ = true;
  pending_.text += text;
  pending_.finished = true;
  pending_.finish_reason = reason;
  pending_.status = std::move(status);
  has_news_ = true;
  changed_.notify_all();
}

}  // namespace dsrt::runtime::serve
