#ifndef DSRT_BACKENDS_BACKEND_H_
#define DSRT_BACKENDS_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backends/communicator.h"
#include "backends/kv_cache.h"
#include "ir/graph.h"
#include "ir/weights.h"

namespace dsrt::backends {

// The tokens of one step, possibly from several sequences: token i of sequence
// `sequence_slots[i]` sits at `positions[i]` and sees that sequence's cache up to it.
struct StepInput {
  std::vector<int32_t> token_ids;
  std::vector<int32_t> positions;
  std::vector<int32_t> sequence_slots;
  // f32 [tokens, hidden]: the "hidden" input of graphs that have one (the MTP module).
  std::vector<float> hidden;
  // Rows (token indices) whose logits the caller wants, in order; empty: every row.
  // A prefill that samples only its last token asks for that row alone, and a
  // backend may then skip the LM head for the others.
  std::vector<int32_t> logit_rows;

  int64_t num_tokens() const { return static_cast<int64_t>(token_ids.size()); }
  // One sequence, `ids` at positions start, start+1, ...
  static StepInput ForSequence(const std::vector<int32_t>& ids, int32_t start, int32_t slot = 0);
};

// The graph's first output, f32 [rows, vocab], row-major (rows: the step's tokens, or
// its logit_rows when given); and its second, when it has one, the hidden state
// f32 [tokens, hidden_size] the MTP module reads.
struct StepOutput {
  std::vector<float> logits;
  int64_t rows = 0;
  int64_t vocab = 0;
  std::vector<float> hidden;
  const float* row(int64_t i) const { return logits.data() + i * vocab; }
};

// A graph prepared for one backend: weights bound, kernels chosen.
class Executable {
 public:
  virtual ~Executable() = default;
  virtual absl::Status Run(const StepInput& step, KvCache& cache, StepOutput* out) = 0;
};

// An execution provider (ONNX Runtime's term): it declares the ops it implements,
// and an engine whose graph uses another op is refused with that op's name.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual bool Supports(absl::string_view op) const = 0;
  virtual absl::StatusOr<std::unique_ptr<Executable>> Compile(const ir::Graph& graph,
                                                              const ir::WeightStore& weights) = 0;
};

struct BackendOptions {
  int threads = 0;  // 0: every core the process may use
  // This rank's link to the others, for a partitioned graph's collectives; not owned,
  // and it must outlive the executables. Null: a graph with collectives is refused.
  Communicator* communicator = nullptr;
};

// "reference" (plain loops, the specification) or "onednn" (the fast one).
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(absl::string_view name, const BackendOptions& options = {});
std::vector<std::string> BackendNames();

// The rows `wanted` of a [rows, width] matrix (all of them when `wanted` is empty).
absl::Status SelectRows(const float* all, int64_t rows, int64_t width, const std::vector<int32_t>& wanted,
                        std::vector<float>* out, int64_t* out_rows);

// That the bytes of weight `value` hold what the graph says it is: dtype, shape, length.
absl::Status CheckWeightView(const ir::Value& value, const ir::WeightView& view);

// An error naming the first collective op of `graph` when there is no communicator
// for it, or when the graph was partitioned for another rank or world size.
absl::Status CheckCollectives(const ir::Graph& graph, const Communicator* communicator);

// The first op of `graph` that `backend` lacks, as an error; OK when it has all.
absl::Status CheckSupported(const Backend& backend, const ir::Graph& graph);

}  // namespace dsrt::backends

#endif  // DSRT_BACKENDS_BACKEND_H_
