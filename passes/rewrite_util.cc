#include "passes/rewrite_util.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace dsrt::passes {

ir::Node* ProducerIf(const ir::Value* value, absl::string_view op) {
  if (value == nullptr || value->producer() == nullptr) return nullptr;
  ir::Node* node = value->producer();
  if (node->op() != op || node->num_outputs() != 1) return nullptr;
  return node;
}

bool IsStatic(const ir::Dim& dim, int64_t size) { return !dim.is_symbolic() && dim.size == size; }

int64_t NormalizedAxis(const ir::Node& node, int rank) {
  int64_t axis = node.attrs().IntOr("axis", -rank - 1);
  if (axis < 0) axis += rank;
  return axis >= 0 && axis < rank ? axis : -1;
}

ReaderIndex IndexReaders(const ir::Graph& graph) {
  ReaderIndex readers;
  for (const auto& node : graph.nodes()) {
    for (const ir::Value* input : node->inputs()) readers[input].push_back(node.get());
  }
  for (const ir::Value* out : graph.outputs()) readers[out].push_back(nullptr);
  return readers;
}

void RemoveUnusedNodes(ir::Graph& graph, const std::vector<ir::Node*>& candidates) {
  absl::flat_hash_map<const ir::Value*, int> readers;
  for (const auto& node : graph.nodes()) {
    for (const ir::Value* input : node->inputs()) ++readers[input];
  }
  for (const ir::Value* out : graph.outputs()) ++readers[out];
  const absl::flat_hash_set<ir::Node*> candidate_set(candidates.begin(), candidates.end());
  absl::flat_hash_set<ir::Node*> dead;
  auto unread = [&](const ir::Node* node) {
    for (int i = 0; i < node->num_outputs(); ++i) {
      if (readers[node->output(i)] > 0) return false;
    }
    return node->op() != "Parameter";
  };
  std::vector<ir::Node*> work(candidates.begin(), candidates.end());
  while (!work.empty()) {
    ir::Node* node = work.back();
    work.pop_back();
    if (dead.contains(node) || !unread(node)) continue;
    dead.insert(node);
    for (const ir::Value* input : node->inputs()) {
      --readers[input];
      ir::Node* producer = input->producer();
      if (candidate_set.contains(producer)) work.push_back(producer);
    }
  }
  graph.RemoveNodes(std::vector<ir::Node*>(dead.begin(), dead.end()));
}

}  // namespace dsrt::passes
