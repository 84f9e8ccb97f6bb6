#ifndef DSRT_PASSES_GRAPH_EDIT_H_
#define DSRT_PASSES_GRAPH_EDIT_H_

// Helpers for passes that build or edit nodes: what the op registry would infer, and
// rewiring many uses in one sweep.

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "ir/graph.h"

namespace dsrt::passes {

// The output types `op` infers for `inputs` and `attrs`; an error when the op rejects them.
absl::StatusOr<std::vector<ir::TensorType>> InferOutputTypes(absl::string_view op, const ir::AttrMap& attrs,
                                                             const std::vector<ir::Value*>& inputs);

// True when `op` over `inputs` and `attrs` infers exactly `expected`.
bool InfersTypes(absl::string_view op, const ir::AttrMap& attrs, const std::vector<ir::Value*>& inputs,
                 const std::vector<ir::TensorType>& expected);

// Every use of each key of `replacements` (node inputs and graph outputs) becomes a use of
// its value, in one pass over the graph; Graph::ReplaceAllUsesWith walks it once a value.
void ReplaceUses(ir::Graph& graph, const absl::flat_hash_map<const ir::Value*, ir::Value*>& replacements);

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_GRAPH_EDIT_H_
