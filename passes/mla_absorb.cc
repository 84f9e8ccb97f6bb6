#include "passes/mla_absorb.h"

#include <vector>

#include "ir/op_registry.h"
#include "passes/rewrite_util.h"

namespace dsrt::passes {
namespace {

using ir::Dim;
using ir::DType;
using ir::Node;
using ir::Value;

// One naive attention block, matched.
struct MlaBlock {
  Node* attention = nullptr;
  Value *q_nope = nullptr, *q_pe = nullptr, *c_kv = nullptr, *k_pe = nullptr, *kv_b_weight = nullptr,
        *positions = nullptr;
  int64_t heads = 0, nope = 0, v_dim = 0;
  std::vector<Node*> replaced;  // the naive block's nodes, from the attention up
};

bool IsF32(const Value* v, int rank) { return v->type().dtype == DType::kF32 && v->type().rank() == rank; }

// kv = Reshape(Linear(c_kv, Constant)) of type [T, H, nope + v] with `tokens` rows.
bool MatchKvExpansion(Value* kv, const Dim& tokens, MlaBlock& b) {
  Node* reshape = ProducerIf(kv, "Reshape");
  if (reshape == nullptr || !IsF32(kv, 3)) return false;
  Value* kv_flat = reshape->input(0);
  Node* linear = ProducerIf(kv_flat, "Linear");
  if (linear == nullptr || !IsF32(kv_flat, 2)) return false;
  const std::vector<Dim>& d = kv->type().dims;
  const int64_t row = b.nope + b.v_dim;
  if (!(d[0] == tokens) || !IsStatic(d[1], b.heads) || !IsStatic(d[2], row)) return false;
  if (!(kv_flat->type().dims[0] == tokens) || !IsStatic(kv_flat->type().dims[1], b.heads * row)) return false;
  b.c_kv = linear->input(0);
  b.kv_b_weight = linear->input(1);
  if (ProducerIf(b.kv_b_weight, "Constant") == nullptr || !IsF32(b.c_kv, 2)) return false;
  if (!(b.c_kv->type().dims[0] == tokens) || b.c_kv->type().dims[1].is_symbolic()) return false;
  b.replaced.push_back(reshape);
  b.replaced.push_back(linear);
  return true;
}

// k_nope = Slice(kv, 2, 0, nope) and v = Slice(kv, 2, nope, nope + v) of one kv.
Value* MatchKvSlices(Value* k_nope, Value* v, MlaBlock& b) {
  Node* k_slice = ProducerIf(k_nope, "Slice");
  Node* v_slice = ProducerIf(v, "Slice");
  if (k_slice == nullptr || v_slice == nullptr || k_slice->input(0) != v_slice->input(0)) return nullptr;
  Value* kv = k_slice->input(0);
  if (kv->type().rank() != 3 || NormalizedAxis(*k_slice, 3) != 2 || NormalizedAxis(*v_slice, 3) != 2) return nullptr;
  const ir::AttrMap &ka = k_slice->attrs(), &va = v_slice->attrs();
  if (ka.IntOr("start", -1) != 0 || ka.IntOr("end", -1) != b.nope) return nullptr;
  if (va.IntOr("start", -1) != b.nope || va.IntOr("end", -1) != b.nope + b.v_dim) return nullptr;
  b.replaced.push_back(k_slice);
  b.replaced.push_back(v_slice);
  return kv;
}

// key = Concat(k_nope, Expand(k_pe [T,1,rope] → [T,H,rope])) along the head dim.
Value* MatchKey(Value* key, const Dim& tokens, int64_t rope, MlaBlock& b) {
  Node* concat = ProducerIf(key, "Concat");
  if (concat == nullptr || concat->num_inputs() != 2 || NormalizedAxis(*concat, 3) != 2) return nullptr;
  Node* expand = ProducerIf(concat->input(1), "Expand");
  if (expand == nullptr) return nullptr;
  b.k_pe = expand->input(0);
  const std::vector<Dim>& d = b.k_pe->type().dims;
  if (!IsF32(b.k_pe, 3) || !(d[0] == tokens) || !IsStatic(d[1], 1) || !IsStatic(d[2], rope)) return nullptr;
  const std::vector<Dim>& e = expand->output()->type().dims;
  if (!(e[0] == tokens) || !IsStatic(e[1], b.heads) || !IsStatic(e[2], rope)) return nullptr;
  b.replaced.push_back(concat);
  b.replaced.push_back(expand);
  return concat->input(0);
}

bool MatchBlock(Node* attention, MlaBlock& b) {
  if (attention->num_inputs() != 4 || attention->num_outputs() != 1) return false;
  Value *query = attention->input(0), *key = attention->input(1), *v = attention->input(2);
  b.attention = attention;
  b.positions = attention->input(3);
  if (!IsF32(query, 3) || !IsF32(key, 3) || !IsF32(v, 3) || !IsF32(attention->output(), 3)) return false;
  if (b.positions->type().dtype != DType::kI32 || b.positions->type().rank() != 1) return false;
  const Dim tokens = query->type().dims[0];

  // query = Concat(q_nope [T,H,nope], q_pe [T,H,rope]).
  Node* query_concat = ProducerIf(query, "Concat");
  if (query_concat == nullptr || query_concat->num_inputs() != 2 || NormalizedAxis(*query_concat, 3) != 2) return false;
  b.q_nope = query_concat->input(0);
  b.q_pe = query_concat->input(1);
  if (!IsF32(b.q_nope, 3) || !IsF32(b.q_pe, 3)) return false;
  const Dim heads = b.q_nope->type().dims[1], nope = b.q_nope->type().dims[2], rope = b.q_pe->type().dims[2];
  if (heads.is_symbolic() || nope.is_symbolic() || rope.is_symbolic()) return false;
  b.heads = heads.size;
  b.nope = nope.size;
  const Dim v_dim = v->type().dims[2];
  if (v_dim.is_symbolic()) return false;
  b.v_dim = v_dim.size;
  if (!(b.q_pe->type().dims[0] == tokens) || !(b.q_pe->type().dims[1] == heads)) return false;
  if (!(v->type().dims[0] == tokens) || !(v->type().dims[1] == heads)) return false;
  b.replaced.push_back(attention);
  b.replaced.push_back(query_concat);

  Value* k_nope = MatchKey(key, tokens, rope.size, b);
  if (k_nope == nullptr) return false;
  Value* kv = MatchKvSlices(k_nope, v, b);
  return kv != nullptr && MatchKvExpansion(kv, tokens, b);
}

// The MLAAttention node for a matched block, appended to the graph; null when the op's
// own shape inference disagrees (then the block stays as it is).
Value* AddLatentAttention(ir::Graph& graph, const MlaBlock& b) {
  ir::AttrMap attrs = {{"heads", b.heads}, {"qk_nope_head_dim", b.nope}, {"v_head_dim", b.v_dim}};
  for (const char* copied : {"cache_slot", "scale", "cache_dtype"}) {
    auto it = b.attention->attrs().values().find(copied);
    if (it != b.attention->attrs().values().end()) attrs.Set(copied, it->second);
  }
  // The naive cache defaults to the query's dtype; keep the same dtype explicitly.
  if (!attrs.Has("cache_dtype")) attrs.Set("cache_dtype", std::string(ir::DTypeName(b.attention->input(0)->type().dtype)));
  std::vector<Value*> inputs = {b.q_nope, b.q_pe, b.c_kv, b.k_pe, b.kv_b_weight, b.positions};
  std::vector<ir::TensorType> input_types;
  for (const Value* v : inputs) input_types.push_back(v->type());
  const ir::OpSchema* schema = ir::OpRegistry::Global().Find("MLAAttention");
  absl::StatusOr<std::vector<ir::TensorType>> types = schema->infer(attrs, input_types);
  if (!types.ok() || types->size() != 1 || !((*types)[0] == b.attention->output()->type())) return nullptr;
  Node* node = graph.AddNode("MLAAttention", std::move(inputs), std::move(attrs), std::move(*types),
                             {b.attention->output()->name() + ".mla"}, b.attention->scope());
  return node->output();
}

}  // namespace

bool FoldingWuvIntoOProjSavesMacs(int64_t hidden, int64_t heads, int64_t v_head_dim, int64_t kv_lora_rank) {
  const double separate = static_cast<double>(heads) * v_head_dim * kv_lora_rank +  // W_UV per head
                          static_cast<double>(hidden) * heads * v_head_dim;         // o_proj
  const double folded = static_cast<double>(hidden) * heads * kv_lora_rank;
  return folded < separate;
}

absl::StatusOr<bool> MlaAbsorb::Run(ir::Graph& graph) {
  std::vector<Node*> attentions;
  for (const auto& node : graph.nodes()) {
    if (node->op() == "Attention") attentions.push_back(node.get());
  }
  // W_UV stays a separate step inside MLAAttention (see FoldingWuvIntoOProjSavesMacs):
  // for DeepSeek's shapes folding it into o_proj costs more than it saves, and where it
  // would pay it needs a derived weight the engine cannot store yet.
  std::vector<Node*> replaced;
  bool changed = false;
  for (Node* attention : attentions) {
    MlaBlock block;
    if (!MatchBlock(attention, block)) continue;
    Value* latent = AddLatentAttention(graph, block);
    if (latent == nullptr) continue;
    graph.ReplaceAllUsesWith(attention->output(), latent);
    replaced.insert(replaced.end(), block.replaced.begin(), block.replaced.end());
    changed = true;
  }
  if (!changed) return false;
  RemoveUnusedNodes(graph, replaced);
  if (absl::Status s = graph.TopologicalSort(); !s.ok()) return s;
  return true;
}

}  // namespace dsrt::passes
