#ifndef DSRT_IR_DOT_H_
#define DSRT_IR_DOT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "ir/graph.h"

namespace dsrt::ir {

struct DotOptions {
  // Draw each Constant (weight) as its own node. When false, weights are folded
  // into the label of the node that reads them, which keeps big graphs legible
  // and their layout fast.
  bool show_constants = true;
  // Draw only the first `max_nodes` nodes in graph order, hidden weights not
  // counted, plus a note saying how many were left out; 0 draws them all.
  int max_nodes = 0;
};

// The graph in GraphViz's DOT language, built with cgraph. Each node is labelled
// with its op and output types ("Linear\nf32[tokens,96]"), coloured by op family
// (attention, MoE, norm, linear, elementwise, shape); weights and step inputs are
// drawn distinctly; nodes of one scope form a subgraph "cluster_<scope>" so that
// layers show as boxes.
std::string GraphToDot(const Graph& graph, const DotOptions& options = {});

// Lays the graph out with GraphViz's "dot" engine and writes it to `path` in
// `format` ("svg", "png", "pdf", "dot", ...).
absl::Status RenderGraph(const Graph& graph, const std::string& path, absl::string_view format,
                         const DotOptions& options = {});

}  // namespace dsrt::ir

#endif  // DSRT_IR_DOT_H_
