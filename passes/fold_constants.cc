#include "passes/fold_constants.h"

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "passes/graph_edit.h"
#include "passes/rewrite_util.h"

namespace dsrt::passes {
namespace {

using ir::Node;
using ir::Value;

// The input a node passes through unchanged, or null. Each op below with one input and
// an output typed exactly as that input copies it: a same-shape Reshape or Expand, a
// same-dtype Cast, a Slice over [0, dim) and a one-input Concat.
Value* IdentityInput(const Node& node) {
  if (node.num_inputs() != 1 || node.num_outputs() != 1) return nullptr;
  const std::string& op = node.op();
  if (op != "Reshape" && op != "Expand" && op != "Cast" && op != "Slice" && op != "Concat") return nullptr;
  return node.input(0)->type() == node.output()->type() ? node.input(0) : nullptr;
}

// Reshape(Reshape(x)) -> Reshape(x): the outer node's type, written as 0 (copy) for each
// symbolic dim and the size for each static one, checked against x by shape inference.
bool ComposeReshapes(Node& node, std::vector<Node*>& maybe_dead) {
  if (node.op() != "Reshape" || node.num_inputs() != 1) return false;
  Node* inner = ProducerIf(node.input(0), "Reshape");
  if (inner == nullptr || inner->num_inputs() != 1) return false;
  std::vector<int64_t> shape;
  for (const ir::Dim& d : node.output()->type().dims) shape.push_back(d.is_symbolic() ? 0 : d.size);
  ir::AttrMap attrs = node.attrs();
  attrs.Set("shape", shape);
  if (!InfersTypes("Reshape", attrs, {inner->input(0)}, {node.output()->type()})) return false;
  node.set_input(0, inner->input(0));
  node.mutable_attrs() = std::move(attrs);
  maybe_dead.push_back(inner);
  return true;
}

// Slice(Slice(x)) along one axis -> Slice(x) from inner.start + outer.start to inner.start + outer.end.
bool ComposeSlices(Node& node, std::vector<Node*>& maybe_dead) {
  if (node.op() != "Slice" || node.num_inputs() != 1) return false;
  Node* inner = ProducerIf(node.input(0), "Slice");
  if (inner == nullptr || inner->num_inputs() != 1) return false;
  const int rank = node.output()->type().rank();
  const int64_t axis = NormalizedAxis(node, rank);
  if (axis < 0 || NormalizedAxis(*inner, rank) != axis) return false;
  const int64_t offset = inner->attrs().IntOr("start", -1);
  ir::AttrMap attrs = node.attrs();
  attrs.Set("axis", axis);
  attrs.Set("start", offset + node.attrs().IntOr("start", -1));
  attrs.Set("end", offset + node.attrs().IntOr("end", -1));
  if (offset < 0 || !InfersTypes("Slice", attrs, {inner->input(0)}, {node.output()->type()})) return false;
  node.set_input(0, inner->input(0));
  node.mutable_attrs() = std::move(attrs);
  maybe_dead.push_back(inner);
  return true;
}

}  // namespace

absl::StatusOr<bool> FoldConstants::Run(ir::Graph& graph) {
  // Folded identities, output -> the value that replaces it. Nodes are visited in
  // topological order, so a replacement is final by the time anything reads it.
  absl::flat_hash_map<const Value*, Value*> forwarded;
  std::vector<Node*> maybe_dead;
  bool changed = false;
  for (const auto& owned : graph.nodes()) {
    Node& node = *owned;
    for (int i = 0; i < node.num_inputs(); ++i) {
      if (auto it = forwarded.find(node.input(i)); it != forwarded.end()) node.set_input(i, it->second);
    }
    changed |= ComposeReshapes(node, maybe_dead);
    changed |= ComposeSlices(node, maybe_dead);
    if (Value* input = IdentityInput(node)) {
      forwarded[node.output()] = input;
      maybe_dead.push_back(&node);
      changed = true;
    }
  }
  for (int i = 0; i < static_cast<int>(graph.outputs().size()); ++i) {
    if (auto it = forwarded.find(graph.outputs()[i]); it != forwarded.end()) graph.SetOutput(i, it->second);
  }
  if (changed) RemoveUnusedNodes(graph, maybe_dead);
  return changed;
}

}  // namespace dsrt::passes
