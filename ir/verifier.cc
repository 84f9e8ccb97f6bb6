#include "ir/verifier.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "ir/op_registry.h"
#include "ir/status_macros.h"

namespace dsrt::ir {
namespace {

std::vector<TensorType> InputTypes(const Node& node) {
  std::vector<TensorType> types;
  for (const Value* v : node.inputs()) types.push_back(v->type());
  return types;
}

absl::Status VerifyNode(const Node& node, const OpSchema& schema) {
  const int n = node.num_inputs();
  if (n < schema.min_inputs || (schema.max_inputs >= 0 && n > schema.max_inputs)) {
    return absl::InvalidArgumentError(absl::StrCat("takes ", schema.min_inputs, "..", schema.max_inputs,
                                                   " inputs, has ", n));
  }
  for (const std::string& attr : schema.required_attrs) {
    if (!node.attrs().Has(attr)) return absl::InvalidArgumentError(absl::StrCat("attribute '", attr, "' is missing"));
  }
  if (schema.declares_outputs) {
    if (node.num_outputs() != 1) return absl::InvalidArgumentError("must have exactly one output");
    return absl::OkStatus();
  }
  DSRT_ASSIGN_OR_RETURN(std::vector<TensorType> inferred, schema.infer(node.attrs(), InputTypes(node)));
  if (static_cast<int>(inferred.size()) != node.num_outputs()) {
    return absl::InvalidArgumentError(absl::StrCat("has ", node.num_outputs(), " outputs, its op makes ",
                                                   inferred.size()));
  }
  for (int i = 0; i < node.num_outputs(); ++i) {
    if (!(inferred[i] == node.output(i)->type())) {
      return absl::InvalidArgumentError(absl::StrCat("output ", i, " is typed ", node.output(i)->type().ToString(),
                                                     " but its op infers ", inferred[i].ToString()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string DescribeNode(const Node& node) {
  std::string s = absl::StrCat(node.num_outputs() > 0 ? absl::StrCat("%", node.output(0)->name(), " = ") : "",
                               node.op());
  if (!node.scope().empty()) absl::StrAppend(&s, " (", node.scope(), ")");
  return s;
}

absl::Status VerifyGraph(const Graph& graph) {
  const OpRegistry& registry = OpRegistry::Global();
  absl::flat_hash_set<const Value*> defined;
  absl::flat_hash_set<std::string> names;
  for (const auto& node : graph.nodes()) {
    auto fail = [&](const absl::Status& why) {
      return absl::InvalidArgumentError(
          absl::StrCat("graph '", graph.name(), "', node ", DescribeNode(*node), ": ", why.message()));
    };
    const OpSchema* schema = registry.Find(node->op());
    if (schema == nullptr) return fail(absl::InvalidArgumentError(absl::StrCat("unknown op '", node->op(), "'")));
    for (const Value* input : node->inputs()) {
      if (input == nullptr || !defined.contains(input)) {
        return fail(absl::InvalidArgumentError(
            absl::StrCat("reads ", input ? "%" + input->name() : "null", " before it is defined")));
      }
    }
    if (absl::Status s = VerifyNode(*node, *schema); !s.ok()) return fail(s);
    for (int i = 0; i < node->num_outputs(); ++i) {
      if (!names.insert(node->output(i)->name()).second) {
        return fail(absl::InvalidArgumentError(absl::StrCat("redefines %", node->output(i)->name())));
      }
      defined.insert(node->output(i));
    }
  }
  if (graph.outputs().empty()) return absl::InvalidArgumentError(absl::StrCat("graph '", graph.name(), "' has no outputs"));
  for (const Value* out : graph.outputs()) {
    if (!defined.contains(out)) {
      return absl::InvalidArgumentError(absl::StrCat("graph '", graph.name(), "' returns an undefined value"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> CacheElementsPerToken(const Graph& graph) {
  const OpRegistry& registry = OpRegistry::Global();
  int64_t total = 0;
  for (const auto& node : graph.nodes()) {
    const OpSchema* schema = registry.Find(node->op());
    if (schema == nullptr || !schema->cache_row) continue;
    DSRT_ASSIGN_OR_RETURN(int64_t row, schema->cache_row(node->attrs(), InputTypes(*node)));
    total += row;
  }
  return total;
}

}  // namespace dsrt::ir
