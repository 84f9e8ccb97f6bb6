#include "passes/partition.h"

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"
#include "passes/graph_edit.h"
#include "passes/rewrite_util.h"
#include "passes/weight_recipes.h"

namespace dsrt::passes {
namespace {

using ir::Node;
using ir::Value;

// Part `index` of `count` near-equal parts of [0, n): [begin, end).
struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
Range Part(int64_t n, int64_t index, int64_t count) { return {n * index / count, n * (index + 1) / count}; }

class Partitioner {
 public:
  Partitioner(ir::Graph& graph, const PartitionOptions& options)
      : graph_(graph), options_(options), world_(options.world_size()) {}

  absl::Status Run() {
    std::vector<Node*> attention, moes, mlps;
    for (const auto& node : graph_.nodes()) {
      if (node->op() == "MLAAttention") attention.push_back(node.get());
      if (node->op() == "FusedMoE") moes.push_back(node.get());
      if (node->op() == "Linear" && IsMlpDown(*node)) mlps.push_back(node.get());
    }
    if (options_.tp > 1) {
      for (const auto& node : graph_.nodes()) {
        if (node->op() == "Attention") {
          return absl::FailedPreconditionError(
              absl::StrCat("attention '", node->output()->name(), "' is not in latent form: --tp needs mla-absorb"));
        }
      }
      for (Node* node : attention) DSRT_RETURN_IF_ERROR(SplitAttention(*node));
      for (Node* down : mlps) DSRT_RETURN_IF_ERROR(SplitMlp(*down, options_.rank, options_.tp));
    }
    for (Node* moe : moes) DSRT_RETURN_IF_ERROR(SplitExperts(*moe));
    DSRT_RETURN_IF_ERROR(SplitLmHead());
    DSRT_RETURN_IF_ERROR(graph_.TopologicalSort());
    DSRT_RETURN_IF_ERROR(RefreshTypes());
    MergeAllReduces();
    RemoveUnusedNodes(graph_, replaced_);
    graph_.mutable_attrs().Set("rank", int64_t{options_.rank});
    graph_.mutable_attrs().Set("world_size", int64_t{world_});
    return absl::OkStatus();
  }

 private:
  // down(Mul(Silu(gate x), up x)): a dense MLP or the shared experts.
  static bool IsMlpDown(const Node& down) {
    const Node* mul = ProducerIf(down.input(0), "Mul");
    if (mul == nullptr || ProducerIf(down.input(1), "Constant") == nullptr) return false;
    const Node* silu = ProducerIf(mul->input(0), "Silu");
    return silu != nullptr && ProducerIf(silu->input(0), "Linear") != nullptr &&
           ProducerIf(mul->input(1), "Linear") != nullptr;
  }

  // Rows (axis 0) or columns (axis 1) `range` of the weight `value` (a Constant, or
  // already a slice of one), as a new derived Constant.
  absl::StatusOr<Value*> SliceWeight(Value* value, int axis, Range range) {
    Node* constant = ProducerIf(value, "Constant");
    if (constant == nullptr || value->type().rank() != 2) {
      return absl::FailedPreconditionError(absl::StrCat("'", value->name(), "' is not a 2-d weight to split"));
    }
    if (IsDerivedWeight(*constant)) {
      return absl::FailedPreconditionError(
          absl::StrCat("weight '", value->name(), "' is already derived: run partition before quantize-weights"));
    }
    const std::string source = constant->attrs().StringOr("weight", "");
    const std::vector<int64_t> shape = {value->type().dims[0].size, value->type().dims[1].size};
    const char* what = axis == 0 ? "rows" : "cols";
    ir::AttrMap attrs;
    attrs.Set("weight", absl::StrCat(source, ".", what, range.begin, "-", range.end));
    attrs.Set("derive", std::string("slice"));
    attrs.Set("source", source);
    attrs.Set("source_shape", shape);
    AddSliceAttrs(axis, range.begin, range.size(), attrs);
    ir::TensorType type = value->type();
    type.dims[axis] = ir::Dim::Static(range.size());
    Node* slice = graph_.AddNode("Constant", {}, std::move(attrs), {std::move(type)},
                                 {absl::StrCat(value->name(), ".", what, range.begin, "-", range.end)},
                                 constant->scope());
    return slice->output();
  }

  absl::Status SliceInput(Node& node, int input, int axis, Range range) {
    DSRT_ASSIGN_OR_RETURN(Value * sliced, SliceWeight(node.input(input), axis, range));
    node.set_input(input, sliced);
    return absl::OkStatus();
  }

  // Every reader of `value` reads AllReduce(value) instead.
  void AllReduceAfter(Value* value) {
    Node* reduce = graph_.AddNode("AllReduce", {value}, {}, {value->type()}, {absl::StrCat(value->name(), ".sum")},
                                  value->producer()->scope());
    graph_.ReplaceAllUsesWith(value, reduce->output());
    reduce->set_input(0, value);  // ReplaceAllUsesWith rewired the AllReduce's own input too
  }

  static absl::Status Unexpected(const Node& node, absl::string_view what) {
    return absl::FailedPreconditionError(
        absl::StrCat("partition: ", node.op(), " '", node.output()->name(), "': ", what));
  }

  // MLAAttention(q_nope, q_pe, c_kv, k_pe, kv_b, positions) with q_nope = Slice(Reshape(
  // Linear(x, q))) and out -> Reshape -> Linear(o_proj).
  absl::Status SplitAttention(Node& attn) {
    DSRT_ASSIGN_OR_RETURN(int64_t heads, attn.attrs().GetInt("heads"));
    DSRT_ASSIGN_OR_RETURN(int64_t nope, attn.attrs().GetInt("qk_nope_head_dim"));
    DSRT_ASSIGN_OR_RETURN(int64_t v_dim, attn.attrs().GetInt("v_head_dim"));
    if (heads % options_.tp != 0) {
      return Unexpected(attn, absl::StrCat(heads, " heads do not divide among ", options_.tp, " ranks"));
    }
    const Range mine = Part(heads, options_.rank, options_.tp);
    const Node* q_nope = ProducerIf(attn.input(0), "Slice");
    Node* q_heads = q_nope == nullptr ? nullptr : ProducerIf(q_nope->input(0), "Reshape");
    Node* q_proj = q_heads == nullptr ? nullptr : ProducerIf(q_heads->input(0), "Linear");
    if (q_proj == nullptr) return Unexpected(attn, "q_nope is not Slice(Reshape(Linear))");
    const int64_t q_head_dim = q_heads->output()->type().dims.back().size;
    DSRT_RETURN_IF_ERROR(SliceInput(*q_proj, 1, 0, {mine.begin * q_head_dim, mine.end * q_head_dim}));
    q_heads->mutable_attrs().Set("shape", std::vector<int64_t>{0, mine.size(), q_head_dim});
    DSRT_RETURN_IF_ERROR(SliceInput(attn, 4, 0, {mine.begin * (nope + v_dim), mine.end * (nope + v_dim)}));
    attn.mutable_attrs().Set("heads", mine.size());

    const std::vector<Node*> readers = graph_.Users(attn.output());
    Node* flat = readers.size() == 1 && readers[0]->op() == "Reshape" ? readers[0] : nullptr;
    const std::vector<Node*> flat_readers = flat == nullptr ? std::vector<Node*>{} : graph_.Users(flat->output());
    Node* o_proj = flat_readers.size() == 1 && flat_readers[0]->op() == "Linear" ? flat_readers[0] : nullptr;
    if (o_proj == nullptr) return Unexpected(attn, "its output is not Linear(Reshape(attention))");
    flat->mutable_attrs().Set("shape", std::vector<int64_t>{0, mine.size() * v_dim});
    DSRT_RETURN_IF_ERROR(SliceInput(*o_proj, 1, 1, {mine.begin * v_dim, mine.end * v_dim}));
    AllReduceAfter(o_proj->output());
    return absl::OkStatus();
  }

  // Columns `index` of `count` of the MLP ending in `down`; AllReduce after it.
  absl::Status SplitMlp(Node& down, int64_t index, int64_t count) {
    Node* mul = down.input(0)->producer();
    Node* gate = mul->input(0)->producer()->input(0)->producer();
    Node* up = mul->input(1)->producer();
    const int64_t inter = down.input(1)->type().dims[1].size;
    const Range mine = Part(inter, index, count);
    if (mine.size() < 1) return Unexpected(down, absl::StrCat("an intermediate of ", inter, " split ", count, " ways"));
    DSRT_RETURN_IF_ERROR(SliceInput(*gate, 1, 0, mine));
    DSRT_RETURN_IF_ERROR(SliceInput(*up, 1, 0, mine));
    DSRT_RETURN_IF_ERROR(SliceInput(down, 1, 1, mine));
    AllReduceAfter(down.output());
    return absl::OkStatus();
  }

  // This rank's block of experts, each split among the ranks that share the block.
  absl::Status SplitExperts(Node& moe) {
    DSRT_ASSIGN_OR_RETURN(int64_t experts, moe.attrs().GetInt("num_experts"));
    const int64_t sharing = world_ / options_.ep;  // ranks per block of experts
    const int64_t block = options_.rank / sharing, slice = options_.rank % sharing;
    if (experts % options_.ep != 0) {
      return Unexpected(moe, absl::StrCat(experts, " experts do not divide among ", options_.ep, " ranks"));
    }
    const Range mine = Part(experts, block, options_.ep);
    const int64_t inter = moe.input(3)->type().dims[0].size;
    const Range columns = Part(inter, slice, sharing);
    if (columns.size() < 1) return Unexpected(moe, absl::StrCat("an intermediate of ", inter, " split ", sharing, " ways"));
    std::vector<Value*> inputs = {moe.input(0), moe.input(1), moe.input(2)};
    for (int part = 0; part < 3; ++part) {  // gate, up, down
      for (int64_t e = mine.begin; e < mine.end; ++e) {
        Value* weight = moe.input(static_cast<int>(3 + part * experts + e));
        if (sharing > 1) {
          DSRT_ASSIGN_OR_RETURN(weight, SliceWeight(weight, part == 2 ? 1 : 0, columns));
        }
        inputs.push_back(weight);
      }
    }
    ir::AttrMap attrs = moe.attrs();
    attrs.Set("num_experts", mine.size());
    attrs.Set("first_expert", mine.begin);
    attrs.Set("routed_experts", experts);
    DSRT_ASSIGN_OR_RETURN(std::vector<ir::TensorType> types, InferOutputTypes("FusedMoE", attrs, inputs));
    Node* local = graph_.AddNode("FusedMoE", std::move(inputs), std::move(attrs), std::move(types),
                                 {absl::StrCat(moe.output()->name(), ".local")}, moe.scope());
    graph_.ReplaceAllUsesWith(moe.output(), local->output());
    replaced_.push_back(&moe);
    if (options_.moe_combine == "alltoall") return CombineAfter(local, experts, sharing);
    AllReduceAfter(local->output());
    return absl::OkStatus();
  }

  // Every reader of the local experts' output reads ExpertCombine(it) instead.
  absl::Status CombineAfter(Node* local, int64_t experts, int64_t sharing) {
    Value* partial = local->output();
    ir::AttrMap attrs;
    attrs.Set("routed_experts", experts);
    attrs.Set("expert_blocks", int64_t{options_.ep});
    attrs.Set("ranks_per_block", sharing);
    Node* combine = graph_.AddNode("ExpertCombine", {partial, local->input(1)}, std::move(attrs), {partial->type()},
                                   {absl::StrCat(partial->name(), ".combined")}, local->scope());
    graph_.ReplaceAllUsesWith(partial, combine->output());
    combine->set_input(0, partial);
    return absl::OkStatus();
  }

  // logits = Linear(x, head): this rank's vocabulary rows, then AllGather.
  absl::Status SplitLmHead() {
    if (graph_.outputs().empty()) return absl::OkStatus();
    Value* logits = graph_.outputs()[0];
    Node* head = ProducerIf(logits, "Linear");
    if (head == nullptr) return absl::FailedPreconditionError("partition: the graph's logits are not a Linear");
    const int64_t vocab = head->input(1)->type().dims[0].size;
    std::vector<int64_t> sizes;
    for (int r = 0; r < world_; ++r) sizes.push_back(Part(vocab, r, world_).size());
    DSRT_RETURN_IF_ERROR(SliceInput(*head, 1, 0, Part(vocab, options_.rank, world_)));
    DSRT_ASSIGN_OR_RETURN(std::vector<ir::TensorType> head_types,
                          InferOutputTypes(head->op(), head->attrs(), head->inputs()));
    logits->set_type(head_types[0]);
    ir::AttrMap attrs;
    attrs.Set("sizes", sizes);
    attrs.Set("rank", int64_t{options_.rank});
    DSRT_ASSIGN_OR_RETURN(std::vector<ir::TensorType> types, InferOutputTypes("AllGather", attrs, {logits}));
    Node* gather = graph_.AddNode("AllGather", {logits}, std::move(attrs), std::move(types),
                                  {absl::StrCat(logits->name(), ".all")}, head->scope());
    graph_.SetOutput(0, gather->output());
    return absl::OkStatus();
  }

  // Shapes change along the split paths: infer every computed value again, in order.
  absl::Status RefreshTypes() {
    for (const auto& node : graph_.nodes()) {
      if (node->op() == "Parameter" || node->op() == "Constant") continue;
      absl::StatusOr<std::vector<ir::TensorType>> types = InferOutputTypes(node->op(), node->attrs(), node->inputs());
      if (!types.ok()) return Unexpected(*node, types.status().message());
      for (int i = 0; i < node->num_outputs(); ++i) node->output(i)->set_type((*types)[i]);
    }
    return absl::OkStatus();
  }

  // Add(AllReduce(a), AllReduce(b)) → AllReduce(Add(a, b)) when nothing else reads them.
  void MergeAllReduces() {
    const ReaderIndex readers = IndexReaders(graph_);
    auto only_reader_is = [&](const Value* v, const Node* reader) {
      auto it = readers.find(v);
      return it != readers.end() && it->second.size() == 1 && it->second[0] == reader;
    };
    std::vector<Node*> adds;
    for (const auto& node : graph_.nodes()) {
      if (node->op() != "Add") continue;
      Node* a = ProducerIf(node->input(0), "AllReduce");
      Node* b = ProducerIf(node->input(1), "AllReduce");
      if (a == nullptr || b == nullptr || a == b) continue;
      if (!only_reader_is(a->output(), node.get()) || !only_reader_is(b->output(), node.get())) continue;
      if (!(a->output()->type() == b->output()->type())) continue;
      adds.push_back(node.get());
    }
    for (Node* add : adds) {
      Node* a = add->input(0)->producer();
      Node* b = add->input(1)->producer();
      add->set_input(0, a->input(0));
      add->set_input(1, b->input(0));
      AllReduceAfter(add->output());
      replaced_.push_back(a);
      replaced_.push_back(b);
    }
    if (!adds.empty()) (void)graph_.TopologicalSort();
  }

  ir::Graph& graph_;
  const PartitionOptions& options_;
  const int world_;
  std::vector<Node*> replaced_;
};

}  // namespace

absl::Status CheckPartitionOptions(const PartitionOptions& o) {
  if (o.tp < 1 || o.ep < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--tp ", o.tp, " --ep ", o.ep, ": both must be at least 1"));
  }
  const int world = o.world_size();
  if (o.tp != 1 && o.tp != world) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tp ", o.tp, " with --ep ", o.ep, ": tp must be 1 or the world size ", world));
  }
  if (world % o.ep != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--ep ", o.ep, " must divide the world size ", world));
  }
  if (o.moe_combine != "allreduce" && o.moe_combine != "alltoall") {
    return absl::InvalidArgumentError(absl::StrCat("--moe-combine ", o.moe_combine, ": allreduce or alltoall"));
  }
  if (o.rank < 0 || o.rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", o.rank, " outside a world of ", world));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Partition::Run(ir::Graph& graph) {
  DSRT_RETURN_IF_ERROR(CheckPartitionOptions(options_));
  if (options_.world_size() == 1) return false;
  Partitioner partitioner(graph, options_);
  DSRT_RETURN_IF_ERROR(partitioner.Run());
  return true;
}

}  // namespace dsrt::passes
