#ifndef DSRT_RUNTIME_SESSION_H_
#define DSRT_RUNTIME_SESSION_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backends/backend.h"
#include "backends/paged_kv_cache.h"
#include "runtime/sampler.h"
#include "runtime/text/tokenizer.h"
#include "serialization/engine_reader.h"

namespace dsrt::runtime {

struct SessionOptions {
  std::string backend = "onednn";
  int threads = 0;  // 0: every core the process may use
  int rank = 0;  // taken from `communicator` when there is one
  // This process's link to the other ranks of a partitioned engine (not owned; it must
  // outlive the session). Null: one process, and the engine must be unpartitioned.
  backends::Communicator* communicator = nullptr;
  int max_sequences = 1;
  // Recompute every weight's checksum at load (a bit flip in a weight is then an
  // error, not a wrong answer). Costs one read of the weights.
  bool verify_weights = true;
  // > 0: a paged KV cache of this many bytes, pages of kv_page_tokens tokens that
  // the caller hands out (paged_cache()), instead of max_seq_len rows for every
  // sequence up front. The server's scheduler uses it.
  int64_t kv_cache_bytes = 0;
  int64_t kv_page_tokens = 16;
};

// A loaded engine ready to run steps: the rank's graph compiled for a backend,
// and a KV cache shaped by the graph's attention ops.
class Session {
 public:
  static absl::StatusOr<std::unique_ptr<Session>> Open(const std::string& engine_path, const SessionOptions& options);

  const serialization::EngineProto& engine() const { return engine_->proto(); }
  int64_t vocab_size() const { return engine_->proto().info().vocab_size(); }
  int64_t max_seq_len() const { return engine_->proto().info().max_seq_len(); }
  int64_t eos_token_id() const { return engine_->proto().info().eos_token_id(); }
  const backends::CacheLayout& cache_layout() const { return cache_->layout(); }
  const ir::Graph& graph() const { return *graph_; }
  int rank() const { return engine_->rank(); }
  int world_size() const { return engine_->world_size(); }
  // Rank 0 decides, the others follow: `bytes` of `data` become rank 0's on every rank
  // (nothing to do in a world of one).
  absl::Status ShareFromRankZero(void* data, int64_t bytes);
  absl::Status ShareTextFromRankZero(std::string* text);
  absl::Status ShareIdsFromRankZero(std::vector<int32_t>* ids);

  // Serving a partitioned engine, where only rank 0 schedules: after LeadOtherRanks,
  // each Step of rank 0 is first sent to the other ranks (with the page tables it reads),
  // which run it in FollowSteps until rank 0 calls ReleaseFollowers.
  void LeadOtherRanks() { leads_ = world_size() > 1 && rank() == 0; }
  absl::Status FollowSteps();
  absl::Status ReleaseFollowers();
  // The paged KV cache when SessionOptions asked for one; nullptr otherwise.
  backends::PagedKvCache* paged_cache() { return paged_cache_; }
  // The tokenizer the engine carries (read on first use); an error if it has none.
  absl::StatusOr<const text::Tokenizer*> tokenizer();

  // Seconds Open spent mapping the engine and reading its graph (and verifying weights
  // when asked), and compiling the graph for the backend (weight packing included).
  double load_seconds() const { return load_seconds_; }
  double compile_seconds() const { return compile_seconds_; }

  // Runs one step; positions must lie inside the engine's max sequence length.
  absl::Status Step(const backends::StepInput& step, backends::StepOutput* out);

 private:
  std::unique_ptr<serialization::Engine> engine_;
  std::unique_ptr<ir::Graph> graph_;
  // Rank 0's step, as the other ranks receive it; and how they run it.
  absl::Status SendStep(const backends::StepInput& step);
  absl::Status RunFollowedStep(const std::vector<int32_t>& message, int64_t tokens, int64_t logit_rows);

  backends::Communicator* communicator_ = nullptr;
  bool leads_ = false;
  std::unique_ptr<backends::Backend> backend_;
  std::unique_ptr<backends::Executable> executable_;
  std::unique_ptr<backends::KvCache> cache_;
  backends::PagedKvCache* paged_cache_ = nullptr;  // cache_, when it is paged
  std::unique_ptr<text::Tokenizer> tokenizer_;
  double load_seconds_ = 0, compile_seconds_ = 0;
};

struct GenerateOptions {
  int64_t max_new_tokens = 16;
  SamplingParams sampling;
  bool stop_at_eos = true;
  bool keep_prompt_logits = false;  // the logits of every prompt position
};

struct GenerateResult {
  std::vector<int32_t> generated;
  std::vector<float> prompt_logits;  // [prompt, vocab] when asked for
  int64_t vocab = 0;
  std::string finish_reason;  // "stop" (EOS) or "length"
};

// Prefills `prompt` in one step, then decodes token by token through the KV cache.
// `on_token` sees each generated token as it is chosen; returning false stops
// generation there (finish_reason "stop"). On a partitioned engine every rank calls it:
// rank 0's prompt is used (the others may pass none), and rank 0 alone samples and
// calls `on_token`; the other ranks follow its choices.
absl::StatusOr<GenerateResult> Generate(Session& session, const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options,
                                        const std::function<bool(int32_t)>& on_token = {});

}  // namespace dsrt::runtime

#endif  // DSRT_RUNTIME_SESSION_H_
