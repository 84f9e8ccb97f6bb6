#include "ir/builder.h"

#include "absl/strings/str_cat.h"
#include "ir/op_registry.h"

namespace dsrt::ir {

Value* GraphBuilder::Parameter(const std::string& name, TensorType type) {
  if (!status_.ok()) return nullptr;
  Node* node = graph_.AddNode("Parameter", {}, {{"name", name}}, {std::move(type)}, {name}, scope_);
  return node->output();
}

Value* GraphBuilder::Constant(const std::string& weight_name, TensorType type) {
  if (!status_.ok()) return nullptr;
  Node* node = graph_.AddNode("Constant", {}, {{"weight", weight_name}}, {std::move(type)}, {weight_name}, scope_);
  return node->output();
}

std::vector<Value*> GraphBuilder::MultiOp(const std::string& op, std::vector<Value*> inputs, AttrMap attrs,
                                          std::vector<std::string> names) {
  if (!status_.ok()) return {};
  for (Value* v : inputs) {
    if (v == nullptr) {
      status_ = absl::InternalError(absl::StrCat(op, ": null input"));
      return {};
    }
  }
  const OpSchema* schema = OpRegistry::Global().Find(op);
  if (schema == nullptr || !schema->infer) {
    status_ = absl::InvalidArgumentError(absl::StrCat("unknown op '", op, "'"));
    return {};
  }
  std::vector<TensorType> input_types;
  for (Value* v : inputs) input_types.push_back(v->type());
  auto types = schema->infer(attrs, input_types);
  if (!types.ok()) {
    status_ = absl::InvalidArgumentError(
        absl::StrCat(scope_.empty() ? "" : scope_ + ": ", types.status().message()));
    return {};
  }
  if (!names.empty()) {
    for (std::string& n : names) n = scope_.empty() || n.empty() ? n : absl::StrCat(scope_, ".", n);
  }
  Node* node = graph_.AddNode(op, std::move(inputs), std::move(attrs), *std::move(types), std::move(names), scope_);
  std::vector<Value*> outputs;
  for (int i = 0; i < node->num_outputs(); ++i) outputs.push_back(node->output(i));
  return outputs;
}

Value* GraphBuilder::Op(const std::string& op, std::vector<Value*> inputs, AttrMap attrs, const std::string& name) {
  std::vector<Value*> outs = MultiOp(op, std::move(inputs), std::move(attrs), {name});
  return outs.empty() ? nullptr : outs[0];
}

Value* GraphBuilder::Slice(Value* x, int64_t axis, int64_t start, int64_t end, const std::string& name) {
  return Op("Slice", {x}, {{"axis", axis}, {"start", start}, {"end", end}}, name);
}

Value* GraphBuilder::Reshape(Value* x, std::vector<int64_t> shape, const std::string& name) {
  return Op("Reshape", {x}, {{"shape", std::move(shape)}}, name);
}

void GraphBuilder::Output(Value* value) {
  if (!status_.ok()) return;
  if (value == nullptr) {
    status_ = absl::InternalError("null graph output");
    return;
  }
  graph_.AddOutput(value);
}

}  // namespace dsrt::ir
