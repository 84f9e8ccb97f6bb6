#ifndef DSRT_PASSES_LIVENESS_H_
#define DSRT_PASSES_LIVENESS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "ir/graph.h"

namespace dsrt::passes {

// For each node (in graph order), the index of the last node that reads each of its
// outputs; graph outputs live to the end. Constants and Parameters are not activations.
struct ValueLifetime {
  const ir::Value* value;
  int defined_at;
  int last_used_at;
  int64_t bytes;
};

// Lifetimes of every activation when the symbolic dims take `bindings`' values.
absl::StatusOr<std::vector<ValueLifetime>> ActivationLifetimes(const ir::Graph& graph,
                                                               const ir::SymbolBindings& bindings);

// The largest sum of bytes of activations alive at once: the arena a step needs
// when every buffer is reused as soon as its last reader has run.
absl::StatusOr<int64_t> PeakActivationBytes(const ir::Graph& graph, const ir::SymbolBindings& bindings);

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_LIVENESS_H_
