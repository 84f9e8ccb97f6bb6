#include "ir/printer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dsrt::ir {
namespace {

bool IsBareNameChar(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; }

std::string ValueRef(const Value* value) {
  return value == nullptr ? "%<null>" : absl::StrCat("%", PrintName(value->name()));
}

std::string PrintAttrs(const AttrMap& attrs) {
  std::vector<std::string> parts;
  for (const auto& [key, value] : attrs.values()) {
    parts.push_back(absl::StrCat(PrintName(key), "=", AttrValueToString(value)));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
}

}  // namespace

std::string PrintName(absl::string_view name) {
  bool bare = !name.empty();
  for (char c : name) bare = bare && IsBareNameChar(c);
  if (bare) return std::string(name);
  return AttrValueToString(std::string(name));
}

std::string PrintNode(const Node& node) {
  std::string line;
  std::vector<std::string> results;
  std::vector<std::string> types;
  for (int i = 0; i < node.num_outputs(); ++i) {
    results.push_back(ValueRef(node.output(i)));
    types.push_back(node.output(i)->type().ToString());
  }
  if (!results.empty()) absl::StrAppend(&line, absl::StrJoin(results, ", "), " = ");

  std::vector<std::string> operands;
  for (const Value* input : node.inputs()) operands.push_back(ValueRef(input));
  absl::StrAppend(&line, node.op(), "(", absl::StrJoin(operands, ", "), ")");

  if (!node.attrs().values().empty()) absl::StrAppend(&line, " ", PrintAttrs(node.attrs()));
  if (!node.scope().empty()) absl::StrAppend(&line, " @", PrintName(node.scope()));
  if (!types.empty()) absl::StrAppend(&line, " : ", absl::StrJoin(types, ", "));
  return line;
}

std::string PrintGraph(const Graph& graph) {
  std::string text = absl::StrCat("graph ", PrintName(graph.name()), " ");
  if (!graph.attrs().values().empty()) absl::StrAppend(&text, PrintAttrs(graph.attrs()), " ");
  absl::StrAppend(&text, "{\n");
  for (const auto& node : graph.nodes()) absl::StrAppend(&text, "  ", PrintNode(*node), "\n");
  if (!graph.outputs().empty()) {
    std::vector<std::string> outputs;
    for (const Value* value : graph.outputs()) outputs.push_back(ValueRef(value));
    absl::StrAppend(&text, "  return ", absl::StrJoin(outputs, ", "), "\n");
  }
  absl::StrAppend(&text, "}\n");
  return text;
}

}  // namespace dsrt::ir
