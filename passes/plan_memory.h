#ifndef DSRT_PASSES_PLAN_MEMORY_H_
#define DSRT_PASSES_PLAN_MEMORY_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "passes/pass.h"

namespace dsrt::passes {

// Places every activation (each output of a node other than Constant and Parameter) in
// one arena, reusing bytes as soon as a value's last reader has run (liveness.h). Two
// greedy best-fit placements are made and the smaller kept: in graph order (when a node
// runs, the values whose last reader ran before it are released, then each of its
// outputs takes the smallest free gap it fits in, or the space above the highest live
// value) and by size (largest value first, each best fit beside the placed values it is
// alive together with, as TFLite's greedy-by-size; skipped above 20000 values).
//
// Activations in dsrt graphs have the symbolic dim `tokens` exactly once and static dims
// otherwise, so a value's bytes are a fixed number per token; offsets are planned per
// token, which makes one plan right for every step size. Values with no symbolic dim get
// a fixed-size region of their own, planned the same way. The plan, for a step of T tokens:
//
//   graph attr  arena_bytes_per_token  the token-proportional region is this times T bytes
//                                      (a multiple of 64), at the start of the arena
//   graph attr  arena_fixed_bytes      the fixed region's size, right after it (only when
//                                      some value has no symbolic dim)
//   node attr   arena_offsets          one int per output: the output starts at
//                                      arena_offsets[i] * T (a multiple of 64 per token);
//                                      -1 for an output in the fixed region
//   node attr   arena_fixed_offsets    only on nodes with a fixed-size output, one int per
//                                      output: its offset from the fixed region's start (a
//                                      multiple of 64), -1 for token-proportional outputs
//
// The arena of a T-token step is arena_bytes_per_token * T + arena_fixed_bytes bytes
// (ArenaBytes). A graph with any other symbolic dim in an activation (or `tokens` twice)
// is left unplanned, and a previous plan is removed. Run it last: any later rewrite
// invalidates the plan.
class PlanMemory : public Pass {
 public:
  std::string name() const override { return "plan-memory"; }
  absl::StatusOr<bool> Run(ir::Graph& graph) override;
};

// The planned arena for a step of `tokens` tokens; NotFound when the graph has no plan.
absl::StatusOr<int64_t> ArenaBytes(const ir::Graph& graph, int64_t tokens);

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_PLAN_MEMORY_H_
