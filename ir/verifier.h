#ifndef DSRT_IR_VERIFIER_H_
#define DSRT_IR_VERIFIER_H_

#include "absl/status/status.h"
#include "ir/graph.h"

namespace dsrt::ir {

// Checks that every node is a registered op with the right arity and attributes,
// reads only values defined before it, and has the output types its op infers;
// and that the graph's outputs exist. The error names the offending node.
absl::Status VerifyGraph(const Graph& graph);

// "%q.3 = Linear (layers.0)" — how errors name a node.
std::string DescribeNode(const Node& node);

// KV-cache values per token, summed over the graph's attention ops.
absl::StatusOr<int64_t> CacheElementsPerToken(const Graph& graph);

}  // namespace dsrt::ir

#endif  // DSRT_IR_VERIFIER_H_
