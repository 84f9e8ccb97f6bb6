#ifndef DSRT_PASSES_PASS_TEST_UTIL_H_
#define DSRT_PASSES_PASS_TEST_UTIL_H_

// What the pass tests share: small DeepSeek graphs, random weights held in memory,
// and a runner that drives a graph through a prefill and decode steps on the
// reference backend, so that a test can compare a graph before and after a pass.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "ir/graph.h"
#include "ir/weights.h"
#include "models/config.h"
#include "passes/pass.h"

namespace dsrt::passes::fixtures {

// The config of a synth preset ("tiny-v2-lite", "tiny-v2", "tiny-v3", "bench-l4").
models::DeepSeekConfig PresetConfig(const std::string& preset);

// The naive graph of `config`, with weights and KV cache in `dtype`.
std::unique_ptr<ir::Graph> NaiveGraph(const models::DeepSeekConfig& config, ir::DType dtype = ir::DType::kF32);

// A weight table in memory with random values for every Constant of a graph, in the
// Constant's dtype: matrices ~ U(±sqrt(3/fan_in)), embeddings ~ U(±1), norms near 1,
// router biases ~ U(±0.1). Deterministic per (seed, weight name).
class RandomWeights : public ir::WeightStore {
 public:
  RandomWeights(const ir::Graph& graph, uint64_t seed);
  absl::StatusOr<ir::WeightView> Get(absl::string_view name) const override;

 private:
  struct Entry {
    ir::DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  absl::flat_hash_map<std::string, Entry> entries_;
};

// `base` plus the derived weights of `graph` (passes/weight_recipes.h), computed from
// `base` as the engine builder computes them from a checkpoint.
class WithDerivedWeights : public ir::WeightStore {
 public:
  WithDerivedWeights(const ir::Graph& graph, const ir::WeightStore& base);
  absl::Status status() const { return status_; }
  absl::StatusOr<ir::WeightView> Get(absl::string_view name) const override;

 private:
  struct Entry {
    ir::DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  const ir::WeightStore& base_;
  absl::flat_hash_map<std::string, Entry> derived_;
  absl::Status status_;
};

// A weight of `store` as float32 (f32 or bf16).
absl::StatusOr<std::vector<float>> LoadF32(const ir::WeightStore& store, const std::string& name,
                                           const std::vector<int64_t>& shape);

// Logits of a prefill of `prompt` (one row per token) followed by one decode step per
// id of `decode`, each fed at the next position through the KV cache: one entry per step.
absl::StatusOr<std::vector<std::vector<float>>> RunSteps(const ir::Graph& graph, const ir::WeightStore& weights,
                                                         const std::vector<int32_t>& prompt,
                                                         const std::vector<int32_t>& decode);

// Random token ids in [0, vocab).
std::vector<int32_t> RandomIds(int64_t vocab, int count, uint64_t seed);

// The largest |a - b| over every step; infinity when the shapes differ.
double MaxAbsDiff(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b);

// Op kind → number of nodes.
std::map<std::string, int> OpCounts(const ir::Graph& graph);

// KV-cache bytes per token of `graph` (backends::CacheLayoutOf), -1 on error.
int64_t KvBytesPerToken(const ir::Graph& graph);

// Runs `pass` then dce, verifying the graph after each; returns what `pass` said.
absl::StatusOr<bool> RunPassThenDce(Pass& pass, ir::Graph& graph);

// Applies each (from, to) text edit to `base` on its own and runs `pass` on the result:
// the pass must report no change and leave the graph exactly as it was.
void ExpectEachEditIsLeftUntouched(const std::string& base,
                                   const std::vector<std::pair<std::string, std::string>>& edits, Pass& pass);

}  // namespace dsrt::passes::fixtures

#endif  // DSRT_PASSES_PASS_TEST_UTIL_H_
