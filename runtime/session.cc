#include "runtime/session.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ir/status_macros.h"

namespace dsrt::runtime {

namespace {

// What identifies an engine file across ranks: its layout and every weight's checksum.
uint64_t Fingerprint(const serialization::EngineProto& proto) {
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  auto mix = [&hash](uint64_t value) {
    for (int i = 0; i < 8; ++i) {
      hash ^= (value >> (8 * i)) & 0xff;
      hash *= 1099511628211ull;
    }
  };
  mix(proto.world_size());
  for (const serialization::RankSection& rank : proto.ranks()) {
    mix(rank.section_offset());
    mix(rank.section_bytes());
    for (const serialization::WeightEntry& w : rank.weights()) mix(w.crc32());
  }
  return hash;
}

// The engine's world must be the communicator's, and every rank must have opened the
// same engine file; every rank returns the same error when not.
absl::Status CheckWorld(const serialization::Engine& engine, backends::Communicator* communicator) {
  const int world = communicator == nullptr ? 1 : communicator->world_size();
  if (engine.world_size() != world) {
    return absl::FailedPreconditionError(absl::StrCat(
        engine.path(), " was built for ", engine.world_size(), " ranks (--tp/--ep), but this run has ", world,
        engine.world_size() > 1 ? absl::StrCat(": run it with mpirun -n ", engine.world_size()) : ""));
  }
  if (world == 1) return absl::OkStatus();
  const uint64_t mine = Fingerprint(engine.proto());
  uint64_t rank0 = mine;
  DSRT_RETURN_IF_ERROR(communicator->Broadcast(&rank0, sizeof(rank0), 0));
  float mismatches = rank0 == mine ? 0.0f : 1.0f;
  DSRT_RETURN_IF_ERROR(communicator->AllReduceSum(&mismatches, 1));
  if (mismatches == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the ranks opened different engine files (", static_cast<int>(mismatches), " differ from rank 0's); this is rank ",
      communicator->rank(), " with ", engine.path()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Session>> Session::Open(const std::string& engine_path, const SessionOptions& options) {
  auto session = std::unique_ptr<Session>(new Session());
  const absl::Time start = absl::Now();
  const int rank = options.communicator != nullptr ? options.communicator->rank() : options.rank;
  session->communicator_ = options.communicator;
  absl::StatusOr<std::unique_ptr<serialization::Engine>> engine = serialization::Engine::Open(engine_path, rank);
  if (!engine.ok()) {
    // A rank past the engine's world: say which world the engine wants, when it can be read.
    absl::StatusOr<std::unique_ptr<serialization::Engine>> metadata = serialization::Engine::Open(engine_path, -1);
    if (metadata.ok()) DSRT_RETURN_IF_ERROR(CheckWorld(**metadata, options.communicator));
    return engine.status();
  }
  DSRT_RETURN_IF_ERROR(CheckWorld(**engine, options.communicator));
  session->engine_ = std::move(*engine);
  if (options.verify_weights) DSRT_RETURN_IF_ERROR(session->engine_->VerifyWeights());
  DSRT_ASSIGN_OR_RETURN(session->graph_, session->engine_->LoadGraph());
  DSRT_ASSIGN_OR_RETURN(session->backend_, backends::CreateBackend(options.backend, {.threads = options.threads,
                                                                                     .communicator = options.communicator}));
  const absl::Time loaded = absl::Now();
  DSRT_ASSIGN_OR_RETURN(session->executable_,
                        session->backend_->Compile(*session->graph_, session->engine_->weights()));
  session->load_seconds_ = absl::ToDoubleSeconds(loaded - start);
  session->compile_seconds_ = absl::ToDoubleSeconds(absl::Now() - loaded);
  DSRT_ASSIGN_OR_RETURN(backends::CacheLayout layout, backends::CacheLayoutOf(*session->graph_));
  const int64_t max_seq_len = session->engine_->proto().info().max_seq_len();
  if (max_seq_len <= 0) return absl::DataLossError(absl::StrCat(engine_path, ": engine has no max sequence length"));
  if (options.kv_cache_bytes > 0) {
    DSRT_ASSIGN_OR_RETURN(auto paged, backends::PagedKvCache::Create(std::move(layout), options.kv_cache_bytes,
                                                                     options.kv_page_tokens, options.max_sequences,
                                                                     max_seq_len));
    session->paged_cache_ = paged.get();
    session->cache_ = std::move(paged);
    return session;
  }
  session->cache_ = std::make_unique<backends::ContiguousKvCache>(std::move(layout), options.max_sequences, max_seq_len);
  return session;
}

absl::Status Session::ShareFromRankZero(void* data, int64_t bytes) {
  if (communicator_ == nullptr || communicator_->world_size() == 1) return absl::OkStatus();
  return communicator_->Broadcast(data, bytes, 0);
}

absl::Status Session::ShareIdsFromRankZero(std::vector<int32_t>* ids) {
  int64_t length = static_cast<int64_t>(ids->size());
  DSRT_RETURN_IF_ERROR(ShareFromRankZero(&length, sizeof(length)));
  ids->resize(length);
  return ShareFromRankZero(ids->data(), length * static_cast<int64_t>(sizeof(int32_t)));
}

absl::Status Session::ShareTextFromRankZero(std::string* text) {
  int64_t length = static_cast<int64_t>(text->size());
  DSRT_RETURN_IF_ERROR(ShareFromRankZero(&length, sizeof(length)));
  text->resize(length);
  return ShareFromRankZero(text->data(), length);
}

absl::StatusOr<const text::Tokenizer*> Session::tokenizer() {
  if (tokenizer_ != nullptr) return tokenizer_.get();
  const serialization::EngineProto& proto = engine_->proto();
  if (proto.tokenizer_json().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        engine_->path(), " carries no tokenizer (its checkpoint had no tokenizer.json): pass token ids with --ids"));
  }
  DSRT_ASSIGN_OR_RETURN(tokenizer_, text::Tokenizer::FromJson(proto.tokenizer_json(), proto.tokenizer_config_json()));
  return tokenizer_.get();
}

absl::Status Session::Step(const backends::StepInput& step, backends::StepOutput* out) {
  if (step.positions.size() != step.token_ids.size() || step.sequence_slots.size() != step.token_ids.size()) {
    return absl::InvalidArgumentError("step: token_ids, positions and sequence_slots differ in length");
  }
  for (int64_t i = 0; i < step.num_tokens(); ++i) {
    const int32_t id = step.token_ids[i];
    if (id < 0 || id >= vocab_size()) {
      return absl::OutOfRangeError(absl::StrCat("token id ", id, " is outside the vocabulary [0, ", vocab_size(), ")"));
    }
    DSRT_RETURN_IF_ERROR(cache_->Check(step.sequence_slots[i], step.positions[i]));
  }
  if (leads_) DSRT_RETURN_IF_ERROR(SendStep(step));
  return executable_->Run(step, *cache_, out);
}

namespace {

// What rank 0 sends before each step it leads: a header, then the step's arrays and
// the page tables of its sequences (sequence, page count, pages) when the cache is paged.
enum FollowKind : int32_t { kEnd = 0, kStep = 1 };
struct FollowHeader {
  int32_t kind = kEnd;
  int32_t tokens = 0;
  int32_t logit_rows = 0;
  int32_t body = 0;  // int32 values after the header
};

}  // namespace

absl::Status Session::SendStep(const backends::StepInput& step) {
  std::vector<int32_t> body;
  for (const auto* part : {&step.token_ids, &step.positions, &step.sequence_slots, &step.logit_rows}) {
    body.insert(body.end(), part->begin(), part->end());
  }
  if (paged_cache_ != nullptr) {
    std::vector<int32_t> sequences = step.sequence_slots;
    std::sort(sequences.begin(), sequences.end());
    sequences.erase(std::unique(sequences.begin(), sequences.end()), sequences.end());
    for (int32_t sequence : sequences) {
      const std::vector<int32_t>& pages = paged_cache_->PageTable(sequence);
      body.push_back(sequence);
      body.push_back(static_cast<int32_t>(pages.size()));
      body.insert(body.end(), pages.begin(), pages.end());
    }
  }
  FollowHeader header{kStep, static_cast<int32_t>(step.num_tokens()), static_cast<int32_t>(step.logit_rows.size()),
                      static_cast<int32_t>(body.size())};
  DSRT_RETURN_IF_ERROR(communicator_->Broadcast(&header, sizeof(header), 0));
  return communicator_->Broadcast(body.data(), static_cast<int64_t>(body.size() * sizeof(int32_t)), 0);
}

absl::Status Session::ReleaseFollowers() {
  if (!leads_) return absl::OkStatus();
  leads_ = false;
  FollowHeader end;
  return communicator_->Broadcast(&end, sizeof(end), 0);
}

absl::Status Session::FollowSteps() {
  if (communicator_ == nullptr || rank() == 0) {
    return absl::FailedPreconditionError("only ranks other than 0 follow rank 0's steps");
  }
  std::vector<int32_t> body;
  while (true) {
    FollowHeader header;
    DSRT_RETURN_IF_ERROR(communicator_->Broadcast(&header, sizeof(header), 0));
    if (header.kind == kEnd) return absl::OkStatus();
    body.resize(header.body);
    DSRT_RETURN_IF_ERROR(communicator_->Broadcast(body.data(), static_cast<int64_t>(body.size() * sizeof(int32_t)), 0));
    DSRT_RETURN_IF_ERROR(RunFollowedStep(body, header.tokens, header.logit_rows));
  }
}

absl::Status Session::RunFollowedStep(const std::vector<int32_t>& message, int64_t tokens, int64_t logit_rows) {
  if (static_cast<int64_t>(message.size()) < 3 * tokens + logit_rows) {
    return absl::DataLossError("rank 0 sent a step shorter than its header says");
  }
  backends::StepInput step;
  auto take = [&, at = message.begin()](int64_t n) mutable {
    std::vector<int32_t> part(at, at + n);
    at += n;
    return part;
  };
  step.token_ids = take(tokens);
  step.positions = take(tokens);
  step.sequence_slots = take(tokens);
  step.logit_rows = take(logit_rows);
  for (size_t at = 3 * tokens + logit_rows; at + 2 <= message.size();) {
    const int32_t sequence = message[at], pages = message[at + 1];
    if (paged_cache_ == nullptr || pages < 0 || at + 2 + pages > message.size()) {
      return absl::DataLossError("rank 0 sent page tables this rank cannot take");
    }
    DSRT_RETURN_IF_ERROR(paged_cache_->Mirror(sequence, absl::MakeConstSpan(message.data() + at + 2, pages)));
    at += 2 + pages;
  }
  backends::StepOutput out;
  return executable_->Run(step, *cache_, &out);
}

namespace {

absl::Status ValidatePrompt(const Session& session, const std::vector<int32_t>& prompt) {
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= session.vocab_size()) {
      return absl::OutOfRangeError(absl::StrCat("token id ", prompt[i], " at prompt position ", i,
                                                " is outside the vocabulary [0, ", session.vocab_size(), ")"));
    }
  }
  if (static_cast<int64_t>(prompt.size()) > session.max_seq_len()) {
    return absl::OutOfRangeError(absl::StrCat("the prompt has ", prompt.size(),
                                              " tokens, more than the engine's max sequence length ",
                                              session.max_seq_len(), " (rebuild with a larger --max-seq-len)"));
  }
  return absl::OkStatus();
}

}  // namespace

// Generate, once every rank holds the prompt.
absl::StatusOr<GenerateResult> GenerateShared(Session& session, const std::vector<int32_t>& prompt,
                                              const GenerateOptions& options,
                                              const std::function<bool(int32_t)>& on_token);

absl::StatusOr<GenerateResult> Generate(Session& session, const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options, const std::function<bool(int32_t)>& on_token) {
  // Rank 0's prompt is the one (the other ranks of a partitioned engine need not tokenize).
  std::vector<int32_t> shared_prompt = prompt;
  DSRT_RETURN_IF_ERROR(session.ShareIdsFromRankZero(&shared_prompt));
  return GenerateShared(session, shared_prompt, options, on_token);
}

absl::StatusOr<GenerateResult> GenerateShared(Session& session, const std::vector<int32_t>& prompt,
                                              const GenerateOptions& options,
                                              const std::function<bool(int32_t)>& on_token) {
  DSRT_RETURN_IF_ERROR(ValidatePrompt(session, prompt));
  DSRT_RETURN_IF_ERROR(ValidateSamplingParams(options.sampling));
  GenerateResult result;
  result.finish_reason = "length";
  backends::StepOutput out;
  backends::StepInput prefill = backends::StepInput::ForSequence(prompt, 0);
  if (!options.keep_prompt_logits) prefill.logit_rows = {static_cast<int32_t>(prompt.size() - 1)};
  DSRT_RETURN_IF_ERROR(session.Step(prefill, &out));
  result.vocab = out.vocab;
  if (options.keep_prompt_logits) result.prompt_logits = out.logits;

  Sampler sampler(options.sampling);
  int64_t position = static_cast<int64_t>(prompt.size());
  const float* last = out.row(out.rows - 1);
  for (int64_t n = 0; n < options.max_new_tokens; ++n) {
    // Rank 0 samples and decides whether to go on; every rank follows it.
    int32_t decision[2] = {0, 1};
    if (session.rank() == 0) {
      decision[0] = sampler.Sample(absl::MakeConstSpan(last, out.vocab));
      if (on_token) decision[1] = on_token(decision[0]) ? 1 : 0;
    }
    DSRT_RETURN_IF_ERROR(session.ShareFromRankZero(decision, sizeof(decision)));
    const int32_t token = decision[0];
    result.generated.push_back(token);
    const bool go_on = decision[1] != 0;
    if (!go_on || (options.stop_at_eos && token == session.eos_token_id())) {
      result.finish_reason = "stop";
      break;
    }
    // The last token needs no step of its own, and the cache ends at max_seq_len.
    if (n + 1 == options.max_new_tokens || position >= session.max_seq_len()) break;
    DSRT_RETURN_IF_ERROR(session.Step(backends::StepInput::ForSequence({token}, static_cast<int32_t>(position)), &out));
    last = out.row(0);
    ++position;
  }
  return result;
}

}  // namespace dsrt::runtime
