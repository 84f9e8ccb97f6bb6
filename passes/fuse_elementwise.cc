#include "passes/fuse_elementwise.h"

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "ir/status_macros.h"
#include "passes/graph_edit.h"
#include "passes/rewrite_util.h"

namespace dsrt::passes {
namespace {

using ir::Node;
using ir::Value;

// What the rewrites of one run collect: uses to move and nodes that may have become dead.
struct Rewrites {
  absl::flat_hash_map<const Value*, Value*> replaced;
  std::vector<Node*> replaced_nodes;
};

bool IsSoleReader(const ReaderIndex& readers, const Value* value, const Node* reader) {
  auto it = readers.find(value);
  return it != readers.end() && it->second.size() == 1 && it->second[0] == reader;
}

// The Silu operand of `mul` that nothing else reads, as (silu, other operand).
std::pair<Node*, Value*> PrivateSiluOperand(const ReaderIndex& readers, Node* mul) {
  for (int i = 0; i < 2; ++i) {
    Node* silu = ProducerIf(mul->input(i), "Silu");
    if (silu != nullptr && IsSoleReader(readers, silu->output(), mul)) return {silu, mul->input(1 - i)};
  }
  return {nullptr, nullptr};
}

bool FuseSwiGlu(ir::Graph& graph, const ReaderIndex& readers, Node* mul, Rewrites& r) {
  if (mul->op() != "Mul" || mul->num_inputs() != 2 || mul->num_outputs() != 1) return false;
  auto [silu, up] = PrivateSiluOperand(readers, mul);
  if (silu == nullptr) return false;
  Value* gate = silu->input(0);
  if (!InfersTypes("SwiGLU", {}, {gate, up}, {mul->output()->type()})) return false;
  Node* fused = graph.AddNode("SwiGLU", {gate, up}, {}, {mul->output()->type()}, {mul->output()->name() + ".swiglu"},
                              mul->scope());
  r.replaced[mul->output()] = fused->output();
  r.replaced_nodes.insert(r.replaced_nodes.end(), {mul, silu});
  return true;
}

// The first RMSNorm that normalizes `value` (reads it as x).
Node* FirstNormOf(const ReaderIndex& readers, const Value* value) {
  auto it = readers.find(value);
  if (it == readers.end()) return nullptr;
  for (Node* reader : it->second) {
    if (reader != nullptr && reader->op() == "RMSNorm" && reader->num_inputs() == 2 && reader->input(0) == value &&
        reader->input(1) != value) {
      return reader;
    }
  }
  return nullptr;
}

bool FuseAddRmsNorm(ir::Graph& graph, const ReaderIndex& readers, Node* add, Rewrites& r) {
  if (add->op() != "Add" || add->num_inputs() != 2 || add->num_outputs() != 1) return false;
  Node* norm = FirstNormOf(readers, add->output());
  if (norm == nullptr) return false;
  absl::StatusOr<double> eps = norm->attrs().GetDouble("eps");
  if (!eps.ok()) return false;
  const ir::AttrMap attrs = {{"eps", *eps}};
  const std::vector<Value*> inputs = {add->input(0), add->input(1), norm->input(1)};
  const std::vector<ir::TensorType> types = {add->output()->type(), norm->output()->type()};
  if (!InfersTypes("AddRMSNorm", attrs, inputs, types)) return false;
  Node* fused = graph.AddNode("AddRMSNorm", inputs, attrs, types,
                              {add->output()->name() + ".fused", norm->output()->name() + ".fused"}, add->scope());
  r.replaced[add->output()] = fused->output(0);
  r.replaced[norm->output()] = fused->output(1);
  r.replaced_nodes.insert(r.replaced_nodes.end(), {add, norm});
  return true;
}

// Rope(x, positions) over the attention's own positions: the node, or null.
Node* RopeAt(const Value* value, const Value* positions) {
  Node* rope = ProducerIf(value, "Rope");
  if (rope == nullptr || rope->num_inputs() != 2 || rope->input(1) != positions) return nullptr;
  for (const auto& [name, attr] : rope->attrs().values()) {
    if (name != "inv_freq" && name != "scale") return nullptr;  // something this fusion would not carry over
  }
  return rope;
}

bool FuseRopeIntoAttention(ir::Graph& graph, Node* attention, Rewrites& r) {
  if (attention->op() != "MLAAttention" || attention->num_inputs() != 6 || attention->num_outputs() != 1 ||
      attention->attrs().Has("rope_inv_freq")) {
    return false;
  }
  Value* positions = attention->input(5);
  Node* q_rope = RopeAt(attention->input(1), positions);
  Node* k_rope = RopeAt(attention->input(3), positions);
  if (q_rope == nullptr || k_rope == nullptr || !(q_rope->attrs() == k_rope->attrs())) return false;
  absl::StatusOr<std::vector<double>> inv_freq = q_rope->attrs().GetDoubles("inv_freq");
  if (!inv_freq.ok()) return false;
  ir::AttrMap attrs = attention->attrs();
  attrs.Set("rope_inv_freq", *inv_freq);
  attrs.Set("rope_scale", q_rope->attrs().DoubleOr("scale", 1.0));
  std::vector<Value*> inputs = attention->inputs();
  inputs[1] = q_rope->input(0);
  inputs[3] = k_rope->input(0);
  const ir::TensorType type = attention->output()->type();
  if (!InfersTypes("MLAAttention", attrs, inputs, {type})) return false;
  Node* fused = graph.AddNode("MLAAttention", std::move(inputs), std::move(attrs), {type},
                              {attention->output()->name() + ".rope"}, attention->scope());
  r.replaced[attention->output()] = fused->output();
  r.replaced_nodes.insert(r.replaced_nodes.end(), {attention, q_rope, k_rope});
  return true;
}

}  // namespace

absl::StatusOr<bool> FuseElementwise::Run(ir::Graph& graph) {
  const ReaderIndex readers = IndexReaders(graph);
  std::vector<Node*> originals;
  for (const auto& node : graph.nodes()) originals.push_back(node.get());
  Rewrites r;
  for (Node* node : originals) {  // each rewrite starts from a different op
    FuseSwiGlu(graph, readers, node, r);
    FuseAddRmsNorm(graph, readers, node, r);
    FuseRopeIntoAttention(graph, node, r);
  }
  if (r.replaced.empty()) return false;
  // The fused nodes read the originals' inputs; one of those may itself be a replaced
  // output (a residual Add reading the previous fused sum), which this sweep also moves.
  ReplaceUses(graph, r.replaced);
  RemoveUnusedNodes(graph, r.replaced_nodes);
  DSRT_RETURN_IF_ERROR(graph.TopologicalSort());
  return true;
}

}  // namespace dsrt::passes
