#ifndef DSRT_BACKENDS_REFERENCE_KERNELS_H_
#define DSRT_BACKENDS_REFERENCE_KERNELS_H_

// The reference kernels: one plain function per op, float loops that read like
// the math. Every fast kernel is tested against these.

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "backends/backend.h"
#include "backends/kv_cache.h"
#include "ir/graph.h"

namespace dsrt::backends::reference {

// A value during execution. Floating tensors live in `f` (bf16 values are kept
// rounded to bf16), integer tensors in `i`. Quantized weight values (i8, i4) live
// unpacked in `f` as the exact small integers they are.
struct Tensor {
  ir::DType dtype = ir::DType::kF32;
  std::vector<int64_t> dims;
  std::vector<float> f;
  std::vector<int32_t> i;

  int64_t size() const;
  bool is_int() const { return dtype == ir::DType::kI32; }
  void Allocate(ir::DType type, std::vector<int64_t> shape);
  // Rounds `f` to the precision of `dtype` (bf16); a no-op for f32.
  void RoundToDType();
};

struct KernelContext {
  const StepInput* step = nullptr;
  KvCache* cache = nullptr;
  Communicator* communicator = nullptr;  // for the collectives of a partitioned graph
};

using Kernel = std::function<absl::Status(const ir::Node& node, const std::vector<const Tensor*>& inputs,
                                          const std::vector<Tensor*>& outputs, KernelContext& ctx)>;

// Op name → kernel, for every op but Parameter and Constant (the executor binds those).
const absl::flat_hash_map<std::string, Kernel>& Kernels();

}  // namespace dsrt::backends::reference

#endif  // DSRT_BACKENDS_REFERENCE_KERNELS_H_
