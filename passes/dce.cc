#include "passes/dce.h"

#include "absl/container/flat_hash_set.h"

namespace dsrt::passes {

absl::StatusOr<bool> Dce::Run(ir::Graph& graph) {
  absl::flat_hash_set<const ir::Value*> live(graph.outputs().begin(), graph.outputs().end());
  std::vector<ir::Node*> dead;
  // Nodes are in topological order: walking backwards sees every reader before its producer.
  for (auto it = graph.nodes().rbegin(); it != graph.nodes().rend(); ++it) {
    ir::Node* node = it->get();
    bool used = node->op() == "Parameter";
    for (int i = 0; i < node->num_outputs() && !used; ++i) used = live.contains(node->output(i));
    if (!used) {
      dead.push_back(node);
      continue;
    }
    for (const ir::Value* input : node->inputs()) live.insert(input);
  }
  if (dead.empty()) return false;
  graph.RemoveNodes(dead);
  return true;
}

}  // namespace dsrt::passes
