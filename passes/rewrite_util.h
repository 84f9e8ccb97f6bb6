#ifndef DSRT_PASSES_REWRITE_UTIL_H_
#define DSRT_PASSES_REWRITE_UTIL_H_

// Small helpers the pattern-matching passes share.

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "ir/graph.h"

namespace dsrt::passes {

// The node that makes `value` when it is an `op` node with one output; otherwise null.
ir::Node* ProducerIf(const ir::Value* value, absl::string_view op);

// True when `dim` is the static size `size`.
bool IsStatic(const ir::Dim& dim, int64_t size);

// Attr 'axis' of `node` made non-negative for a tensor of `rank`; -1 when absent or invalid.
int64_t NormalizedAxis(const ir::Node& node, int rank);

// Who reads each value, built once so that matching a big graph stays linear. Each
// reader appears once per input it reads the value through; graph outputs are readers
// with a null node.
using ReaderIndex = absl::flat_hash_map<const ir::Value*, std::vector<ir::Node*>>;
ReaderIndex IndexReaders(const ir::Graph& graph);

// Removes those of `candidates` whose outputs nothing reads (graph outputs count as
// readers), then the candidates that became unread in turn. Other nodes stay, even
// dead ones: a pass cleans up what it replaced and leaves the rest to `dce`.
void RemoveUnusedNodes(ir::Graph& graph, const std::vector<ir::Node*>& candidates);

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_REWRITE_UTIL_H_
