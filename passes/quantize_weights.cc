#include "passes/quantize_weights.h"

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ir/op_registry.h"
#include "ir/status_macros.h"
#include "passes/rewrite_util.h"
#include "passes/weight_recipes.h"

namespace dsrt::passes {
namespace {

using ir::DType;
using ir::Node;
using ir::Value;

// The derived (values, scales) Constants of one source weight.
struct Quantized {
  Value* values = nullptr;
  Value* scales = nullptr;
};

class Quantizer {
 public:
  Quantizer(ir::Graph& graph, std::string scheme, int64_t group_size)
      : graph_(graph), scheme_(std::move(scheme)), group_size_(group_size) {}

  // Whether `weight` is a float [out, in] Constant: a checkpoint weight or a slice of one.
  static bool CanQuantize(const Value* weight) {
    const Node* constant = ProducerIf(weight, "Constant");
    const ir::TensorType& t = weight->type();
    return constant != nullptr && ir::IsFloat(t.dtype) && t.rank() == 2 && !t.dims[0].is_symbolic() &&
           !t.dims[1].is_symbolic() && constant->attrs().StringOr("derive", "slice") == "slice";
  }

  // The quantized form of `weight`, which CanQuantize.
  Quantized Of(Value* weight) {
    auto it = done_.find(weight);
    if (it != done_.end()) return it->second;
    Node* constant = weight->producer();
    const ir::TensorType& t = weight->type();
    const std::string source = constant->attrs().StringOr("weight", "");  // named after, not read from
    const int64_t rows = t.dims[0].size, cols = t.dims[1].size;
    const int64_t groups = (cols + group_size_ - 1) / group_size_;
    const DType value_type = scheme_ == "int8" ? DType::kI8 : DType::kI4;
    Quantized q;
    q.values = Add(constant, source, "values", ir::StaticType(value_type, {rows, cols}));
    q.scales = Add(constant, source, "scales", ir::StaticType(DType::kF32, {rows, groups}));
    done_[weight] = q;
    return q;
  }

 private:
  Value* Add(Node* constant, const std::string& source, const std::string& part, ir::TensorType type) {
    const ir::TensorType& t = constant->output()->type();
    ir::AttrMap attrs;
    attrs.Set("weight", absl::StrCat(source, ".", scheme_, "-g", group_size_, ".", part));
    attrs.Set("derive", std::string("quantize"));
    if (IsDerivedWeight(*constant)) {  // a slice: quantize the same rows or columns of its source
      attrs.Set("source", constant->attrs().StringOr("source", ""));
      attrs.Set("source_shape", constant->attrs().GetInts("source_shape").value_or(std::vector<int64_t>{}));
      CopySliceAttrs(*constant, attrs);
    } else {
      attrs.Set("source", source);
      attrs.Set("source_shape", std::vector<int64_t>{t.dims[0].size, t.dims[1].size});
    }
    attrs.Set("scheme", scheme_);
    attrs.Set("group_size", group_size_);
    attrs.Set("part", part);
    Node* node = graph_.AddNode("Constant", {}, std::move(attrs), {std::move(type)},
                                {absl::StrCat(constant->output()->name(), part == "values" ? ".q" : ".s")},
                                constant->scope());
    return node->output();
  }

  ir::Graph& graph_;
  std::string scheme_;
  int64_t group_size_;
  absl::flat_hash_map<const Value*, Quantized> done_;
};

// Output types of `op` over `inputs`, or an error when they would differ from `expected`.
absl::StatusOr<std::vector<ir::TensorType>> Infer(absl::string_view op, const ir::AttrMap& attrs,
                                                  const std::vector<Value*>& inputs, const ir::TensorType& expected) {
  std::vector<ir::TensorType> types;
  for (const Value* v : inputs) types.push_back(v->type());
  DSRT_ASSIGN_OR_RETURN(std::vector<ir::TensorType> out, ir::OpRegistry::Global().Find(op)->infer(attrs, types));
  if (out.size() != 1 || !(out[0] == expected)) {
    return absl::InternalError(absl::StrCat(op, " would change the type ", expected.ToString()));
  }
  return out;
}

}  // namespace

absl::Status CheckQuantizeOptions(const std::string& scheme, int64_t group_size) {
  if (scheme != "int8" && scheme != "int4") {
    return absl::InvalidArgumentError(absl::StrCat("weight quantization scheme '", scheme, "' is not int8 or int4"));
  }
  if (group_size < 2 || (scheme == "int4" && group_size % 2 != 0)) {
    return absl::InvalidArgumentError(absl::StrCat("quantization group size ", group_size, " must be at least 2",
                                                   scheme == "int4" ? " and even for int4" : ""));
  }
  return absl::OkStatus();
}

bool IsQuantizableLinearWeight(const std::string& weight) {
  // model.layers.<N>.<module>.<proj>.weight
  constexpr absl::string_view kPrefix = "model.layers.";
  if (!absl::StartsWith(weight, kPrefix) || !absl::EndsWith(weight, ".weight")) return false;
  const std::vector<std::string> parts =
      absl::StrSplit(weight.substr(kPrefix.size(), weight.size() - kPrefix.size() - 7), '.');
  int layer = 0;
  if (parts.size() < 3 || !absl::SimpleAtoi(parts[0], &layer)) return false;
  const std::string& proj = parts.back();
  if (parts.size() == 3 && parts[1] == "self_attn") {
    return proj == "q_proj" || proj == "q_a_proj" || proj == "q_b_proj" || proj == "kv_a_proj_with_mqa" ||
           proj == "o_proj";
  }
  const bool mlp_proj = proj == "gate_proj" || proj == "up_proj" || proj == "down_proj";
  if (!mlp_proj || parts[1] != "mlp") return false;
  if (parts.size() == 3) return true;                                   // dense MLP
  if (parts.size() == 4) return parts[2] == "shared_experts";           // shared experts
  return parts.size() == 5 && parts[2] == "experts" && absl::SimpleAtoi(parts[3], &layer);  // routed, unfused
}

absl::StatusOr<bool> QuantizeWeights::Run(ir::Graph& graph) {
  DSRT_RETURN_IF_ERROR(CheckQuantizeOptions(scheme_, group_size_));
  if (!lm_head_scheme_.empty()) DSRT_RETURN_IF_ERROR(CheckQuantizeOptions(lm_head_scheme_, group_size_));
  std::vector<Node*> linears, moes;
  for (const auto& node : graph.nodes()) {
    if (node->op() == "Linear" && node->num_inputs() == 2) linears.push_back(node.get());
    if (node->op() == "FusedMoE") moes.push_back(node.get());
  }
  Quantizer quantizer(graph, scheme_, group_size_), head_quantizer(graph, lm_head_scheme_, group_size_);
  std::vector<Node*> replaced;
  for (Node* linear : linears) {
    Node* constant = ProducerIf(linear->input(1), "Constant");
    if (constant == nullptr) continue;
    // A rank's slice is quantized when the checkpoint weight it comes from would be.
    const std::string weight = constant->attrs().StringOr(IsDerivedWeight(*constant) ? "source" : "weight", "");
    const bool head = !lm_head_scheme_.empty() && weight == "lm_head.weight";
    if (!IsQuantizableLinearWeight(weight) && !head) continue;
    if (!Quantizer::CanQuantize(linear->input(1))) continue;
    const Quantized q = (head ? head_quantizer : quantizer).Of(linear->input(1));
    ir::AttrMap attrs = linear->attrs();
    attrs.Set("group_size", group_size_);
    std::vector<Value*> inputs = {linear->input(0), q.values, q.scales};
    DSRT_ASSIGN_OR_RETURN(std::vector<ir::TensorType> types, Infer("QLinear", attrs, inputs, linear->output()->type()));
    Node* qlinear = graph.AddNode("QLinear", std::move(inputs), std::move(attrs), std::move(types),
                                  {linear->output()->name()}, linear->scope());
    graph.ReplaceAllUsesWith(linear->output(), qlinear->output());
    replaced.insert(replaced.end(), {linear, constant});
  }
  for (Node* moe : moes) {
    const int64_t weights = moe->num_inputs() - 3;
    bool all_constant = weights > 0;
    for (int64_t i = 0; i < weights; ++i) all_constant = all_constant && Quantizer::CanQuantize(moe->input(3 + i));
    if (!all_constant) continue;  // left as it is
    std::vector<Value*> values, scales;
    for (int64_t i = 0; i < weights; ++i) {
      const Quantized q = quantizer.Of(moe->input(3 + i));
      values.push_back(q.values);
      scales.push_back(q.scales);
    }
    ir::AttrMap attrs = moe->attrs();
    attrs.Set("group_size", group_size_);
    std::vector<Value*> inputs = {moe->input(0), moe->input(1), moe->input(2)};
    inputs.insert(inputs.end(), values.begin(), values.end());
    inputs.insert(inputs.end(), scales.begin(), scales.end());
    DSRT_ASSIGN_OR_RETURN(std::vector<ir::TensorType> types, Infer("QFusedMoE", attrs, inputs, moe->output()->type()));
    Node* qmoe = graph.AddNode("QFusedMoE", std::move(inputs), std::move(attrs), std::move(types),
                               {moe->output()->name()}, moe->scope());
    graph.ReplaceAllUsesWith(moe->output(), qmoe->output());
    replaced.push_back(moe);
    for (int64_t i = 0; i < weights; ++i) replaced.push_back(moe->input(3 + i)->producer());
  }
  if (replaced.empty()) return false;
  RemoveUnusedNodes(graph, replaced);
  DSRT_RETURN_IF_ERROR(graph.TopologicalSort());
  return true;
}

}  // namespace dsrt::passes
