#include "passes/graph_edit.h"

#include "absl/strings/str_cat.h"
#include "ir/op_registry.h"

namespace dsrt::passes {

absl::StatusOr<std::vector<ir::TensorType>> InferOutputTypes(absl::string_view op, const ir::AttrMap& attrs,
                                                             const std::vector<ir::Value*>& inputs) {
  const ir::OpSchema* schema = ir::OpRegistry::Global().Find(op);
  if (schema == nullptr || !schema->infer) {
    return absl::InvalidArgumentError(absl::StrCat("op '", op, "' infers no types"));
  }
  const int n = static_cast<int>(inputs.size());
  if (n < schema->min_inputs || (schema->max_inputs >= 0 && n > schema->max_inputs)) {
    return absl::InvalidArgumentError(absl::StrCat(op, " does not take ", n, " inputs"));
  }
  for (const std::string& attr : schema->required_attrs) {
    if (!attrs.Has(attr)) return absl::InvalidArgumentError(absl::StrCat(op, " needs attribute '", attr, "'"));
  }
  std::vector<ir::TensorType> types;
  for (const ir::Value* v : inputs) types.push_back(v->type());
  return schema->infer(attrs, types);
}

bool InfersTypes(absl::string_view op, const ir::AttrMap& attrs, const std::vector<ir::Value*>& inputs,
                 const std::vector<ir::TensorType>& expected) {
  absl::StatusOr<std::vector<ir::TensorType>> types = InferOutputTypes(op, attrs, inputs);
  return types.ok() && *types == expected;
}

void ReplaceUses(ir::Graph& graph, const absl::flat_hash_map<const ir::Value*, ir::Value*>& replacements) {
  if (replacements.empty()) return;
  for (const auto& node : graph.nodes()) {
    for (int i = 0; i < node->num_inputs(); ++i) {
      if (auto it = replacements.find(node->input(i)); it != replacements.end()) node->set_input(i, it->second);
    }
  }
  for (int i = 0; i < static_cast<int>(graph.outputs().size()); ++i) {
    if (auto it = replacements.find(graph.outputs()[i]); it != replacements.end()) graph.SetOutput(i, it->second);
  }
}

}  // namespace dsrt::passes
