#ifndef DSRT_PASSES_CSE_H_
#define DSRT_PASSES_CSE_H_

#include "passes/pass.h"

namespace dsrt::passes {

// Common-subexpression elimination: a node with the same op, the same inputs (after
// earlier merges; Add and Mul in either order), equal attributes and equal output types
// as an earlier node is dropped and its uses read the earlier node's outputs. Constants
// naming the same weight with the same type and attributes merge the same way.
//
// Never merged: Parameters (each is a step input of its own) and nodes that write the KV
// cache (ops with a cache row, or any node with a 'cache_slot' attribute): two of them
// are two writes, and merging would drop one.
class Cse : public Pass {
 public:
  std::string name() const override { return "cse"; }
  absl::StatusOr<bool> Run(ir::Graph& graph) override;
};

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_CSE_H_
