#include "runtime/serve/scheduler.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ir/status_macros.h"

namespace dsrt::runtime::serve {

struct Scheduler::Sequence {
  Sequence(Request r, std::shared_ptr<RequestChannel> c, const text::Tokenizer* tokenizer)
      : request(std::move(r)), channel(std::move(c)), tokens(request.prompt), sampler(request.sampling) {
    if (tokenizer != nullptr) streamer = std::make_unique<TextStreamer>(*tokenizer, request.stop);
  }

  bool decoding() const { return computed + 1 == static_cast<int64_t>(tokens.size()); }
  bool active() const { return !done && !preempted; }

  Request request;
  std::shared_ptr<RequestChannel> channel;
  std::vector<int32_t> tokens;  // the prompt, then what was generated
  int64_t computed = 0;         // leading tokens whose rows the cache holds
  int64_t admitted_length = 0;  // tokens at the last admission: those up to it are prefill
  int64_t generated = 0;
  int slot = -1;
  bool counted = false;  // its prompt tokens are in the metrics
  bool done = false;
  bool preempted = false;
  Sampler sampler;
  std::unique_ptr<TextStreamer> streamer;
  absl::Time arrival = absl::Now();
  absl::Time first_token = absl::InfinitePast();
};

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(Session& session, const SchedulerOptions& options,
                                                             ServeMetrics* metrics) {
  backends::PagedKvCache* cache = session.paged_cache();
  if (cache == nullptr) return absl::FailedPreconditionError("the scheduler needs a session with a paged KV cache");
  if (options.max_step_tokens < cache->max_sequences()) {
    return absl::InvalidArgumentError(absl::StrCat("max_step_tokens ", options.max_step_tokens,
                                                   " is below the batch size ", cache->max_sequences()));
  }
  absl::StatusOr<const text::Tokenizer*> tokenizer = session.tokenizer();
  return std::unique_ptr<Scheduler>(
      new Scheduler(session, *cache, tokenizer.ok() ? *tokenizer : nullptr, options, metrics));
}

Scheduler::Scheduler(Session& session, backends::PagedKvCache& cache, const text::Tokenizer* tokenizer,
                     const SchedulerOptions& options, ServeMetrics* metrics)
    : session_(session), cache_(cache), tokenizer_(tokenizer), options_(options), metrics_(metrics) {
  for (int slot = cache_.max_sequences() - 1; slot >= 0; --slot) free_slots_.push_back(slot);
  PublishGauges();
}

Scheduler::~Scheduler() { Stop(); }

absl::Status Scheduler::Validate(const Request& request) const {
  if (request.prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    if (request.prompt[i] < 0 || request.prompt[i] >= session_.vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", request.prompt[i], " at prompt position ", i,
                                                     " is outside the vocabulary [0, ", session_.vocab_size(), ")"));
    }
  }
  const int64_t length = static_cast<int64_t>(request.prompt.size());
  if (length > session_.max_seq_len()) {
    return absl::InvalidArgumentError(absl::StrCat("the prompt has ", length,
                                                   " tokens, more than the engine's max sequence length ",
                                                   session_.max_seq_len()));
  }
  if (cache_.PagesFor(length) > cache_.total_pages()) {
    return absl::InvalidArgumentError(absl::StrCat("the prompt has ", length, " tokens, more than the whole KV cache holds (",
                                                   cache_.total_pages() * cache_.page_tokens(), ")"));
  }
  if (request.max_tokens <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens ", request.max_tokens, " is not positive"));
  }
  if (!request.stop.empty() && tokenizer_ == nullptr) {
    return absl::InvalidArgumentError("stop strings need a tokenizer, and the engine carries none");
  }
  return ValidateSamplingParams(request.sampling);
}

absl::StatusOr<std::shared_ptr<RequestChannel>> Scheduler::Submit(Request request) {
  DSRT_RETURN_IF_ERROR(Validate(request));
  auto channel = std::make_shared<RequestChannel>(static_cast<int64_t>(request.prompt.size()));
  auto sequence = std::make_unique<Sequence>(std::move(request), channel, tokenizer_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("the server is shutting down");
    if (static_cast<int64_t>(incoming_.size()) + metrics_->gauges().waiting >= options_.max_waiting) {
      return absl::ResourceExhaustedError(absl::StrCat("more than ", options_.max_waiting, " requests are waiting"));
    }
    incoming_.push_back(std::move(sequence));
  }
  wake_.notify_one();
  return channel;
}

void Scheduler::TakeIncoming() {
  std::lock_guard<std::mutex> lock(mu_);
  while (!incoming_.empty()) {
    waiting_.push_back(std::move(incoming_.front()));
    incoming_.pop_front();
  }
}

void Scheduler::Retire(Sequence& sequence, const std::string& reason, absl::Status status) {
  std::string rest;
  if (sequence.streamer != nullptr && status.ok()) rest = sequence.streamer->Finish();
  sequence.channel->Finish(rest, reason, status);
  if (sequence.slot >= 0) {
    cache_.Release(sequence.slot);
    free_slots_.push_back(sequence.slot);
    sequence.slot = -1;
  }
  sequence.done = true;
  metrics_->RecordFinished(status.ok() ? reason : "error");
  if (sequence.generated > 1) {
    metrics_->RecordTimePerOutputToken(absl::ToDoubleSeconds(absl::Now() - sequence.first_token) /
                                       static_cast<double>(sequence.generated - 1));
  }
}

void Scheduler::RetireCancelled() {
  for (auto& sequence : running_) {
    if (sequence->active() && sequence->channel->cancelled()) Retire(*sequence, "cancelled", absl::OkStatus());
  }
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (!(*it)->channel->cancelled()) {
      ++it;
      continue;
    }
    Retire(**it, "cancelled", absl::OkStatus());
    it = waiting_.erase(it);
  }
}

void Scheduler::Admit() {
  int64_t active = 0;
  for (const auto& sequence : running_) active += sequence->active();
  while (!waiting_.empty() && !free_slots_.empty()) {
    Sequence& next = *waiting_.front();
    const int slot = free_slots_.back();
    if (!Place(next, slot, active)) break;
    free_slots_.pop_back();
    next.slot = slot;
    next.preempted = false;
    if (!next.counted) metrics_->RecordPromptTokens(next.admitted_length);
    next.counted = true;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    ++active;
  }
}

// Gives the sequence the slot's pages: the published pages holding its prefix (never
// its last token, which must run to give logits), then fresh ones for the rest. False,
// holding nothing, when those do not fit beside one spare page per running sequence
// (so that admitting does not force a preemption on the very next decode step).
bool Scheduler::Place(Sequence& sequence, int slot, int64_t active) {
  const int64_t length = static_cast<int64_t>(sequence.tokens.size());
  std::vector<int32_t> cached;
  if (options_.prefix_caching) cached = cache_.MatchPrefix(sequence.tokens, (length - 1) / cache_.page_tokens());
  if (!cache_.Adopt(slot, cached).ok()) return false;
  if (cache_.PagesToGrow(slot, length) + active > cache_.free_pages() || !cache_.Grow(slot, length).ok()) {
    cache_.Release(slot);
    return false;
  }
  sequence.computed = static_cast<int64_t>(cached.size()) * cache_.page_tokens();
  sequence.admitted_length = length;
  if (options_.prefix_caching) metrics_->RecordPrefixLookup(length, sequence.computed);
  return true;
}

void Scheduler::Preempt(Sequence& sequence) {
  cache_.Release(sequence.slot);
  free_slots_.push_back(sequence.slot);
  sequence.slot = -1;
  sequence.computed = 0;
  sequence.preempted = true;
}

// A page for the decoding sequence's next row; when the pool is empty, the most
// recently admitted sequence gives its pages back. False when `sequence` itself
// had to go (preempted, or retired when it alone fills the cache).
bool Scheduler::ReserveDecodePage(Sequence& sequence) {
  while (!cache_.Grow(sequence.slot, sequence.computed + 1).ok()) {
    Sequence* victim = nullptr;
    int64_t active = 0;
    for (const auto& s : running_) {
      if (!s->active()) continue;
      victim = s.get();
      ++active;
    }
    if (victim != &sequence) {
      Preempt(*victim);
      continue;
    }
    if (active == 1) {
      Retire(sequence, "length", absl::OkStatus());
    } else {
      Preempt(sequence);
    }
    return false;
  }
  return true;
}

void Scheduler::SampleAndStream(Sequence& sequence, const float* logits, int64_t vocab) {
  const int32_t token = sequence.sampler.Sample(absl::MakeConstSpan(logits, vocab));
  sequence.tokens.push_back(token);
  ++sequence.generated;
  metrics_->RecordGeneratedTokens(1);
  if (sequence.generated == 1) {
    sequence.first_token = absl::Now();
    metrics_->RecordTimeToFirstToken(absl::ToDoubleSeconds(sequence.first_token - sequence.arrival));
  }
  const bool eos = sequence.request.stop_at_eos && token == session_.eos_token_id();
  std::string piece;
  if (sequence.streamer != nullptr && !eos) {  // the end-of-sequence token is not text
    // The only error is an id the tokenizer lacks: the padding rows at the end of an
    // LM head larger than the vocabulary. Such a token has no text.
    absl::StatusOr<std::string> decoded = sequence.streamer->Push(token);
    if (decoded.ok()) piece = std::move(*decoded);
  }
  sequence.channel->Publish(piece, token);
  if (eos || (sequence.streamer != nullptr && sequence.streamer->stopped())) return Retire(sequence, "stop", {});
  const bool cache_full = static_cast<int64_t>(sequence.tokens.size()) - 1 >= session_.max_seq_len();
  if (sequence.generated >= sequence.request.max_tokens || cache_full) Retire(sequence, "length", {});
}

absl::StatusOr<bool> Scheduler::Step() {
  TakeIncoming();
  RetireCancelled();
  Admit();

  backends::StepInput step;
  std::vector<std::pair<Sequence*, int64_t>> fed;  // each sequence in the step and its token count
  std::vector<Sequence*> sampled;                  // in logit-row order
  int64_t prefilled = 0;
  auto feed = [&](Sequence& sequence, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      const int64_t position = sequence.computed + i;
      prefilled += position < sequence.admitted_length;
      step.token_ids.push_back(sequence.tokens[position]);
      step.positions.push_back(static_cast<int32_t>(position));
      step.sequence_slots.push_back(sequence.slot);
    }
    fed.emplace_back(&sequence, count);
    if (sequence.computed + count == static_cast<int64_t>(sequence.tokens.size())) {
      step.logit_rows.push_back(static_cast<int32_t>(step.token_ids.size() - 1));
      sampled.push_back(&sequence);
    }
  };
  // Every decoding sequence gets its token first; prompt chunks share what is left.
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence& sequence = *running_[i];
    if (sequence.active() && sequence.decoding() && ReserveDecodePage(sequence)) feed(sequence, 1);
  }
  int64_t budget = options_.max_step_tokens - step.num_tokens();
  for (auto& sequence : running_) {
    if (budget <= 0) break;
    if (!sequence->active() || sequence->decoding()) continue;
    const int64_t count = std::min<int64_t>(budget, static_cast<int64_t>(sequence->tokens.size()) - sequence->computed);
    feed(*sequence, count);
    budget -= count;
  }

  absl::Status status = absl::OkStatus();
  if (step.num_tokens() > 0) {
    backends::StepOutput out;
    status = session_.Step(step, &out);
    if (status.ok()) {
      metrics_->RecordPrefilledTokens(prefilled);
      for (auto& [sequence, count] : fed) {
        sequence->computed += count;
        if (options_.prefix_caching) {
          cache_.Publish(sequence->slot, absl::MakeConstSpan(sequence->tokens.data(), sequence->computed));
        }
      }
      for (size_t row = 0; row < sampled.size(); ++row) SampleAndStream(*sampled[row], out.row(row), out.vocab);
    } else {
      for (auto& [sequence, count] : fed) Retire(*sequence, "error", status);
    }
  }

  // Preempted sequences go back to the head of the queue in admission order.
  std::vector<std::unique_ptr<Sequence>> still_running, preempted;
  for (auto& sequence : running_) {
    if (sequence->done) continue;
    (sequence->preempted ? preempted : still_running).push_back(std::move(sequence));
  }
  running_ = std::move(still_running);
  for (auto it = preempted.rbegin(); it != preempted.rend(); ++it) waiting_.push_front(std::move(*it));
  PublishGauges();
  DSRT_RETURN_IF_ERROR(status);
  return step.num_tokens() > 0;
}

void Scheduler::PublishGauges() {
  SchedulerGauges gauges;
  gauges.running = static_cast<int64_t>(running_.size());
  gauges.waiting = static_cast<int64_t>(waiting_.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    gauges.waiting += static_cast<int64_t>(incoming_.size());
  }
  gauges.kv_pages_used = cache_.used_pages();
  gauges.kv_pages_free = cache_.free_pages();
  gauges.kv_pages_evictable = cache_.evictable_pages();
  gauges.kv_page_tokens = cache_.page_tokens();
  metrics_->SetGauges(gauges);
}

void Scheduler::FailAll(const absl::Status& status) {
  TakeIncoming();
  for (auto& sequence : running_) {
    if (!sequence->done) Retire(*sequence, "error", status);
  }
  for (auto& sequence : waiting_) Retire(*sequence, "error", status);
  running_.clear();
  waiting_.clear();
  PublishGauges();
}

void Scheduler::Start() {
  loop_ = std::thread([this] {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        const bool busy = !running_.empty() || !waiting_.empty();
        if (!busy) wake_.wait(lock, [&] { return stopping_ || !incoming_.empty(); });
        if (stopping_) break;
      }
      absl::StatusOr<bool> ran = Step();
      if (!ran.ok()) std::fprintf(stderr, "dsrt serve: step failed: %s\n", std::string(ran.status().message()).c_str());
      if (ran.ok() && !*ran) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait_for(lock, std::chrono::milliseconds(5), [&] { return stopping_ || !incoming_.empty(); });
      }
    }
    FailAll(absl::UnavailableError("the server is shutting down"));
  });
}

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (loop_.joinable()) loop_.join();
}

}  // namespace dsrt::runtime::serve
