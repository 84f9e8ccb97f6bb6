#include "passes/liveness.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "ir/status_macros.h"

namespace dsrt::passes {

absl::StatusOr<std::vector<ValueLifetime>> ActivationLifetimes(const ir::Graph& graph,
                                                               const ir::SymbolBindings& bindings) {
  absl::flat_hash_map<const ir::Value*, int> index;
  std::vector<ValueLifetime> lifetimes;
  const int end = graph.num_nodes();
  for (int n = 0; n < graph.num_nodes(); ++n) {
    const ir::Node& node = *graph.nodes()[n];
    for (const ir::Value* input : node.inputs()) {
      if (auto it = index.find(input); it != index.end()) lifetimes[it->second].last_used_at = n;
    }
    if (node.op() == "Constant" || node.op() == "Parameter") continue;
    for (int i = 0; i < node.num_outputs(); ++i) {
      const ir::Value* v = node.output(i);
      DSRT_ASSIGN_OR_RETURN(std::vector<int64_t> dims, ir::ResolveDims(v->type(), bindings));
      index[v] = static_cast<int>(lifetimes.size());
      lifetimes.push_back({v, n, n, ir::DTypeBytes(v->type().dtype, ir::NumElements(dims))});
    }
  }
  for (const ir::Value* out : graph.outputs()) {
    if (auto it = index.find(out); it != index.end()) lifetimes[it->second].last_used_at = end;
  }
  return lifetimes;
}

absl::StatusOr<int64_t> PeakActivationBytes(const ir::Graph& graph, const ir::SymbolBindings& bindings) {
  DSRT_ASSIGN_OR_RETURN(std::vector<ValueLifetime> lifetimes, ActivationLifetimes(graph, bindings));
  std::vector<int64_t> delta(graph.num_nodes() + 2, 0);
  for (const ValueLifetime& l : lifetimes) {
    delta[l.defined_at] += l.bytes;
    delta[l.last_used_at + 1] -= l.bytes;
  }
  int64_t live = 0, peak = 0;
  for (int64_t d : delta) peak = std::max(peak, live += d);
  return peak;
}

}  // namespace dsrt::passes
