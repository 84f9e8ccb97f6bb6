#include "passes/moe_fuse.h"

#include <vector>

#include "ir/op_registry.h"
#include "passes/rewrite_util.h"

namespace dsrt::passes {
namespace {

using ir::DType;
using ir::Node;
using ir::Value;

struct Expert {
  Value *gate = nullptr, *up = nullptr, *down = nullptr;  // Constants
};

// One MoE layer's routed experts, matched.
struct MoeBlock {
  Node* router = nullptr;
  Value* x = nullptr;
  std::vector<Expert> experts;
  Value* sum = nullptr;         // the last Add of the chain: what the fused op replaces
  std::vector<Node*> replaced;  // the per-expert nodes
};

bool IsF32Rank2(const Value* v) { return v->type().dtype == DType::kF32 && v->type().rank() == 2; }

// The one node that reads `value`, when it is read exactly once (and is not a graph output).
Node* SoleReader(const ReaderIndex& readers, const Value* value) {
  auto it = readers.find(value);
  if (it == readers.end() || it->second.size() != 1) return nullptr;
  return it->second[0];
}

// The input of a two-input `node` other than `one` (null if `one` is not an input).
Value* OtherInput(const Node* node, const Value* one) {
  if (node->num_inputs() != 2) return nullptr;
  if (node->input(0) == one) return node->input(1);
  if (node->input(1) == one) return node->input(0);
  return nullptr;
}

// y = Linear(Mul(Silu(Linear(x, gate)), Linear(x, up)), down) with Constant weights, all f32 [T, ·].
bool MatchExpertMlp(Value* y, Value* x, Expert& expert, std::vector<Node*>& replaced) {
  Node* down = ProducerIf(y, "Linear");
  if (down == nullptr || !IsF32Rank2(y)) return false;
  Node* mul = ProducerIf(down->input(0), "Mul");
  if (mul == nullptr || mul->num_inputs() != 2) return false;
  Node* silu = ProducerIf(mul->input(0), "Silu");
  Value* up_out = mul->input(1);
  if (silu == nullptr) {
    silu = ProducerIf(mul->input(1), "Silu");
    up_out = mul->input(0);
  }
  if (silu == nullptr) return false;
  Node* gate = ProducerIf(silu->input(0), "Linear");
  Node* up = ProducerIf(up_out, "Linear");
  if (gate == nullptr || up == nullptr || gate->input(0) != x || up->input(0) != x) return false;
  for (const Node* n : {down, mul, silu, gate, up}) {
    if (!IsF32Rank2(n->output())) return false;
  }
  expert.gate = gate->input(1);
  expert.up = up->input(1);
  expert.down = down->input(1);
  for (const Value* w : {expert.gate, expert.up, expert.down}) {
    if (ProducerIf(w, "Constant") == nullptr) return false;
  }
  replaced.insert(replaced.end(), {down, mul, silu, gate, up});
  return true;
}

// weighted = Mul(y_e, ExpertWeight(ids, wts){expert=e}), either operand order.
bool MatchWeightedExpert(Node* mul, Node* expert_weight, MoeBlock& b) {
  if (mul == nullptr || mul->op() != "Mul" || !IsF32Rank2(mul->output())) return false;
  if (!(mul->output()->type().dims == b.x->type().dims)) return false;
  Value* y = OtherInput(mul, expert_weight->output());
  Expert expert;
  if (y == nullptr || !MatchExpertMlp(y, b.x, expert, b.replaced)) return false;
  b.experts.push_back(expert);
  b.replaced.push_back(mul);
  b.replaced.push_back(expert_weight);
  return true;
}

bool MatchBlock(const ReaderIndex& readers, Node* router, MoeBlock& b) {
  if (router->num_outputs() != 2 || router->num_inputs() < 2) return false;
  b.router = router;
  b.x = router->input(0);
  if (!IsF32Rank2(b.x) || router->input(1)->type().rank() != 2) return false;
  const ir::Dim num_experts = router->input(1)->type().dims[0];
  if (num_experts.is_symbolic() || num_experts.size < 1) return false;
  Value *ids = router->output(0), *wts = router->output(1);

  // Exactly one ExpertWeight per expert reads the router, each read once by its Mul.
  std::vector<Node*> by_expert(num_experts.size, nullptr);
  const std::vector<Node*> no_readers;
  auto readers_of = [&](const Value* v) -> const std::vector<Node*>& {
    auto it = readers.find(v);
    return it == readers.end() ? no_readers : it->second;
  };
  for (Node* user : readers_of(ids)) {
    if (user == nullptr || user->op() != "ExpertWeight" || user->num_inputs() != 2 || user->input(0) != ids ||
        user->input(1) != wts) {
      return false;
    }
    const int64_t e = user->attrs().IntOr("expert", -1);
    if (e < 0 || e >= num_experts.size || by_expert[e] != nullptr) return false;
    by_expert[e] = user;
  }
  for (Node* user : readers_of(wts)) {
    if (user == nullptr || user->op() != "ExpertWeight") return false;
  }
  for (Node* expert_weight : by_expert) {
    if (expert_weight == nullptr) return false;
  }

  // The chain sum_0 = weighted_0, sum_e = Add(sum_{e-1}, weighted_e), in expert order.
  Value* sum = nullptr;
  for (int64_t e = 0; e < num_experts.size; ++e) {
    Node* mul = SoleReader(readers, by_expert[e]->output());
    if (!MatchWeightedExpert(mul, by_expert[e], b)) return false;
    Value* weighted = mul->output();
    if (sum == nullptr) {
      sum = weighted;
      continue;
    }
    Node* add = SoleReader(readers, sum);
    if (add == nullptr || add->op() != "Add" || SoleReader(readers, weighted) != add) return false;
    if (add->input(0) != sum || add->input(1) != weighted) return false;  // the order of the f32 sum
    if (!(add->output()->type() == mul->output()->type())) return false;
    b.replaced.push_back(add);
    sum = add->output();
  }
  b.sum = sum;
  return true;
}

Value* AddFusedMoe(ir::Graph& graph, const MoeBlock& b) {
  const int64_t experts = static_cast<int64_t>(b.experts.size());
  std::vector<Value*> inputs = {b.x, b.router->output(0), b.router->output(1)};
  for (const Expert& e : b.experts) inputs.push_back(e.gate);
  for (const Expert& e : b.experts) inputs.push_back(e.up);
  for (const Expert& e : b.experts) inputs.push_back(e.down);
  const ir::Dim top_k = b.router->output(0)->type().dims[1];
  if (top_k.is_symbolic()) return nullptr;
  ir::AttrMap attrs = {{"num_experts", experts}, {"top_k", top_k.size}};
  std::vector<ir::TensorType> input_types;
  for (const Value* v : inputs) input_types.push_back(v->type());
  absl::StatusOr<std::vector<ir::TensorType>> types =
      ir::OpRegistry::Global().Find("FusedMoE")->infer(attrs, input_types);
  if (!types.ok() || types->size() != 1 || !((*types)[0] == b.sum->type())) return nullptr;
  Node* node = graph.AddNode("FusedMoE", std::move(inputs), std::move(attrs), std::move(*types), {"moe"},
                             b.router->scope());
  return node->output();
}

}  // namespace

absl::StatusOr<bool> MoeFuse::Run(ir::Graph& graph) {
  std::vector<Node*> routers;
  for (const auto& node : graph.nodes()) {
    if (node->op() == "Router") routers.push_back(node.get());
  }
  // Blocks of different routers share no node but x, whose readers are never asked
  // about: one index serves every block.
  const ReaderIndex readers = IndexReaders(graph);
  std::vector<Node*> replaced;
  bool changed = false;
  for (Node* router : routers) {
    MoeBlock block;
    if (!MatchBlock(readers, router, block)) continue;
    Value* fused = AddFusedMoe(graph, block);
    if (fused == nullptr) continue;
    graph.ReplaceAllUsesWith(block.sum, fused);
    replaced.insert(replaced.end(), block.replaced.begin(), block.replaced.end());
    changed = true;
  }
  if (!changed) return false;
  RemoveUnusedNodes(graph, replaced);
  if (absl::Status s = graph.TopologicalSort(); !s.ok()) return s;
  return true;
}

}  // namespace dsrt::passes
