#include "passes/cse.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "ir/op_registry.h"

namespace dsrt::passes {
namespace {

using ir::Node;
using ir::Value;

bool MayMerge(const Node& node) {
  if (node.op() == "Parameter" || node.attrs().Has("cache_slot")) return false;
  const ir::OpSchema* schema = ir::OpRegistry::Global().Find(node.op());
  return schema != nullptr && !schema->cache_row;
}

bool IsCommutative(const Node& node) { return (node.op() == "Add" || node.op() == "Mul") && node.num_inputs() == 2; }

// Everything that decides what a node computes, as one string: op, input names (value
// names are unique in a graph), attributes and output types.
std::string Signature(const Node& node) {
  std::vector<std::string> inputs;
  for (const Value* v : node.inputs()) inputs.push_back(v->name());
  if (IsCommutative(node)) std::sort(inputs.begin(), inputs.end());
  std::string key = node.op();
  for (const std::string& name : inputs) absl::StrAppend(&key, "\x1f%", name);
  for (const auto& [name, value] : node.attrs().values()) {
    absl::StrAppend(&key, "\x1e", name, "=", ir::AttrValueToString(value));
  }
  for (int i = 0; i < node.num_outputs(); ++i) absl::StrAppend(&key, "\x1d", node.output(i)->type().ToString());
  return key;
}

}  // namespace

absl::StatusOr<bool> Cse::Run(ir::Graph& graph) {
  absl::flat_hash_map<std::string, Node*> first_by_signature;
  absl::flat_hash_map<const Value*, Value*> merged;  // a dropped node's output -> the kept one's
  std::vector<Node*> dropped;
  for (const auto& owned : graph.nodes()) {
    Node& node = *owned;
    for (int i = 0; i < node.num_inputs(); ++i) {
      if (auto it = merged.find(node.input(i)); it != merged.end()) node.set_input(i, it->second);
    }
    if (!MayMerge(node)) continue;
    auto [it, inserted] = first_by_signature.try_emplace(Signature(node), &node);
    if (inserted) continue;
    for (int i = 0; i < node.num_outputs(); ++i) merged[node.output(i)] = it->second->output(i);
    dropped.push_back(&node);
  }
  if (dropped.empty()) return false;
  for (int i = 0; i < static_cast<int>(graph.outputs().size()); ++i) {
    if (auto it = merged.find(graph.outputs()[i]); it != merged.end()) graph.SetOutput(i, it->second);
  }
  graph.RemoveNodes(dropped);
  return true;
}

}  // namespace dsrt::passes
