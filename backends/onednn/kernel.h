#ifndef DSRT_BACKENDS_ONEDNN_KERNEL_H_
#define DSRT_BACKENDS_ONEDNN_KERNEL_H_

// What a oneDNN-backend kernel sees: at compile time the node, its values and the
// weights (to pack them once); at run time the step and one activation arena.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "backends/backend.h"
#include "backends/kv_cache.h"
#include "backends/onednn/dnnl_matmul.h"
#include "ir/graph.h"
#include "ir/weights.h"

namespace dsrt::backends::onednn {

// Where a value lives during a step. Activations are f32 (bf16-typed ones hold
// bf16-rounded floats) or i32, in the arena at offset_per_token × tokens.
struct ValueSlot {
  ir::DType dtype = ir::DType::kF32;
  std::vector<ir::Dim> dims;
  int64_t elements_per_token = 1;  // the product of the static dims
  int64_t offset_per_token = 0;    // bytes
  bool constant = false;
  ir::WeightView weight;  // constants only
};

class StepContext {
 public:
  StepContext(const StepInput& step, KvCache& cache, const std::vector<ValueSlot>& slots, uint8_t* arena)
      : step_(step), cache_(cache), slots_(slots), arena_(arena) {}

  int64_t tokens() const { return step_.num_tokens(); }
  const StepInput& step() const { return step_; }
  KvCache& cache() { return cache_; }
  float* F(int value) { return reinterpret_cast<float*>(Data(value)); }
  int32_t* I(int value) { return reinterpret_cast<int32_t*>(Data(value)); }
  // The value's shape with `tokens` bound to this step's count.
  std::vector<int64_t> Dims(int value) const;
  int64_t Elements(int value) const { return slots_[value].elements_per_token * tokens(); }
  // Rows of the logits the caller wants (empty: all).
  const std::vector<int32_t>& logit_rows() const { return step_.logit_rows; }
  // Set by the kernel that wrote only the logit rows asked for.
  bool logits_selected = false;

 private:
  uint8_t* Data(int value) { return arena_ + slots_[value].offset_per_token * tokens(); }

  const StepInput& step_;
  KvCache& cache_;
  const std::vector<ValueSlot>& slots_;
  uint8_t* arena_;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual absl::Status Run(StepContext& ctx) = 0;
};

// Shared by the kernels of one executable while they are built.
class CompileContext {
 public:
  // Packed weights go into `packed`, which outlives the kernels that point into it.
  struct PackedWeights {
    WeightArena arena;
    absl::flat_hash_map<std::string, std::unique_ptr<PackedLinear>> by_name;
  };
  CompileContext(Dnnl& dnnl, const ir::WeightStore& weights, const std::vector<ValueSlot>& slots,
                 const absl::flat_hash_map<const ir::Value*, int>& index, const ir::Value* logits,
                 PackedWeights& packed, Communicator* communicator)
      : dnnl_(dnnl),
        weights_(weights),
        slots_(slots),
        index_(index),
        logits_(logits),
        packed_(packed),
        communicator_(communicator) {}

  Dnnl& dnnl() { return dnnl_; }
  WeightArena& arena() { return packed_.arena; }
  int Index(const ir::Value* value) const { return index_.at(value); }
  const ValueSlot& Slot(const ir::Value* value) const { return slots_[Index(value)]; }
  // The bytes of a Constant input; an error naming the node when it is not one.
  absl::StatusOr<ir::WeightView> Weight(const ir::Node& node, int input) const;
  // A small weight as f32 (norm scales, router biases, quantization scales).
  absl::StatusOr<std::vector<float>> WeightF32(const ir::Node& node, int input) const;
  // The engine should map this weight's pages now: a kernel reads it in place every step.
  void Prefault(const ir::Node& node, int input) const;
  // The engine may drop this weight's pages: a kernel keeps its own packed copy.
  void Unneeded(const ir::Node& node, int input) const;
  // Float weights stacked and packed once for oneDNN; shared by every node naming the same ones.
  absl::StatusOr<PackedLinear*> Pack(const ir::Node& node, const std::vector<int>& inputs);
  // One weight packed in f32 whatever its stored dtype: for small matmuls whose result
  // decides something discrete (router logits), where rounding activations to bf16
  // would move near-ties.
  absl::StatusOr<PackedLinear*> PackF32(const ir::Node& node, int input);
  // Whether `value` is the graph's logits (only the rows the caller asks for are computed).
  bool IsLogits(const ir::Value* value) const { return value == logits_; }
  // This rank's link to the others; null in a single process.
  Communicator* communicator() const { return communicator_; }

 private:
  Dnnl& dnnl_;
  const ir::WeightStore& weights_;
  const std::vector<ValueSlot>& slots_;
  const absl::flat_hash_map<const ir::Value*, int>& index_;
  const ir::Value* logits_;
  PackedWeights& packed_;
  Communicator* communicator_;
};

using KernelFactory = std::function<absl::StatusOr<std::unique_ptr<Kernel>>(const ir::Node&, CompileContext&)>;

// Op name → factory, for every op but Parameter and Constant.
const absl::flat_hash_map<std::string, KernelFactory>& KernelFactories();

// The factories each file contributes.
void AddElementwiseKernels(absl::flat_hash_map<std::string, KernelFactory>& factories);
void AddLinearKernels(absl::flat_hash_map<std::string, KernelFactory>& factories);
void AddAttentionKernels(absl::flat_hash_map<std::string, KernelFactory>& factories);
void AddMoeKernels(absl::flat_hash_map<std::string, KernelFactory>& factories);
void AddCollectiveKernels(absl::flat_hash_map<std::string, KernelFactory>& factories);

// Splits [0, n) across the OpenMP threads when the work is worth it.
void ParallelFor(int64_t n, int64_t cost_per_item, const std::function<void(int64_t begin, int64_t end)>& body);
// Runs body(thread, threads) once on each OpenMP thread, for work in phases that would
// otherwise be a parallel region each; Barrier() inside waits for every thread.
void ParallelRegion(const std::function<void(int thread, int threads)>& body);
void Barrier();
// Thread `thread` of `threads`'s share of a total `work`: [begin, end), all shares
// contiguous and in thread order.
std::pair<int64_t, int64_t> ShareOf(int64_t work, int thread, int threads);

}  // namespace dsrt::backends::onednn

#endif  // DSRT_BACKENDS_ONEDNN_KERNEL_H_
