#include "serialization/graph_proto.h"

#include <type_traits>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"
#include "ir/verifier.h"

namespace dsrt::serialization {
namespace {

void DimToProto(const ir::Dim& dim, DimProto& proto) {
  if (dim.is_symbolic()) {
    proto.set_symbol(dim.symbol);
  } else {
    proto.set_size(dim.size);
  }
}

void ValueToProto(const ir::Value& value, ValueProto& proto) {
  proto.set_name(value.name());
  proto.set_dtype(std::string(ir::DTypeName(value.type().dtype)));
  for (const ir::Dim& dim : value.type().dims) DimToProto(dim, *proto.add_dims());
}

AttrProto AttrToProto(const ir::AttrValue& value) {
  AttrProto proto;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          proto.set_i(v);
        } else if constexpr (std::is_same_v<T, double>) {
          proto.set_f(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          proto.set_s(v);
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          proto.mutable_ints()->mutable_values()->Add(v.begin(), v.end());
        } else {
          proto.mutable_doubles()->mutable_values()->Add(v.begin(), v.end());
        }
      },
      value);
  return proto;
}

void NodeToProto(const ir::Node& node, NodeProto& proto) {
  proto.set_op(node.op());
  proto.set_scope(node.scope());
  for (const ir::Value* input : node.inputs()) proto.add_inputs(input->name());
  for (int i = 0; i < node.num_outputs(); ++i) ValueToProto(*node.output(i), *proto.add_outputs());
  for (const auto& [name, value] : node.attrs().values()) (*proto.mutable_attrs())[name] = AttrToProto(value);
}

// "node 3 (%q.3 = Linear (layers.0))": the node's position and, as far as the
// proto allows, how ir::DescribeNode would name it.
std::string DescribeNodeProto(const NodeProto& node, int index) {
  std::string s = absl::StrCat("node ", index, " (");
  if (node.outputs_size() > 0) absl::StrAppend(&s, "%", node.outputs(0).name(), " = ");
  absl::StrAppend(&s, node.op().empty() ? "<no op>" : node.op());
  if (!node.scope().empty()) absl::StrAppend(&s, " (", node.scope(), ")");
  return absl::StrCat(s, ")");
}

absl::StatusOr<ir::Dim> DimFromProto(const DimProto& proto) {
  switch (proto.kind_case()) {
    case DimProto::kSize:
      if (proto.size() < 0) return absl::InvalidArgumentError(absl::StrCat("negative dim ", proto.size()));
      return ir::Dim::Static(proto.size());
    case DimProto::kSymbol:
      if (proto.symbol().empty()) return absl::InvalidArgumentError("empty dim symbol");
      return ir::Dim::Symbolic(proto.symbol());
    case DimProto::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("dim with neither a size nor a symbol");
}

absl::StatusOr<ir::TensorType> TypeFromProto(const ValueProto& proto) {
  ir::TensorType type;
  DSRT_ASSIGN_OR_RETURN(type.dtype, ir::ParseDType(proto.dtype()));
  for (const DimProto& dim : proto.dims()) {
    DSRT_ASSIGN_OR_RETURN(ir::Dim d, DimFromProto(dim));
    type.dims.push_back(std::move(d));
  }
  return type;
}

absl::StatusOr<ir::AttrValue> AttrFromProto(const AttrProto& proto) {
  switch (proto.value_case()) {
    case AttrProto::kI:
      return ir::AttrValue(proto.i());
    case AttrProto::kF:
      return ir::AttrValue(proto.f());
    case AttrProto::kS:
      return ir::AttrValue(proto.s());
    case AttrProto::kInts:
      return ir::AttrValue(std::vector<int64_t>(proto.ints().values().begin(), proto.ints().values().end()));
    case AttrProto::kDoubles:
      return ir::AttrValue(std::vector<double>(proto.doubles().values().begin(), proto.doubles().values().end()));
    case AttrProto::VALUE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("attribute without a value");
}

absl::Status AddNodeFromProto(const NodeProto& proto, ir::Graph& graph) {
  std::vector<ir::Value*> inputs;
  for (const std::string& name : proto.inputs()) {
    ir::Value* value = graph.FindValue(name);
    if (value == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("reads %", name, ", which no earlier node defines"));
    inputs.push_back(value);
  }
  std::vector<ir::TensorType> types;
  std::vector<std::string> names;
  for (const ValueProto& output : proto.outputs()) {
    if (output.name().empty()) return absl::InvalidArgumentError("has an output without a name");
    // Graph::AddNode would silently rename a duplicate; a file must not.
    if (graph.FindValue(output.name()) != nullptr || absl::c_linear_search(names, output.name())) {
      return absl::InvalidArgumentError(absl::StrCat("redefines %", output.name()));
    }
    auto type = TypeFromProto(output);
    if (!type.ok())
      return absl::InvalidArgumentError(absl::StrCat("output %", output.name(), ": ", type.status().message()));
    types.push_back(*std::move(type));
    names.push_back(output.name());
  }
  ir::AttrMap attrs;
  for (const auto& [name, value] : proto.attrs()) {
    auto attr = AttrFromProto(value);
    if (!attr.ok())
      return absl::InvalidArgumentError(absl::StrCat("attribute '", name, "': ", attr.status().message()));
    attrs.Set(name, *std::move(attr));
  }
  graph.AddNode(proto.op(), std::move(inputs), std::move(attrs), std::move(types), std::move(names), proto.scope());
  return absl::OkStatus();
}

}  // namespace

GraphProto GraphToProto(const ir::Graph& graph) {
  GraphProto proto;
  proto.set_name(graph.name());
  for (const auto& node : graph.nodes()) NodeToProto(*node, *proto.add_nodes());
  for (const ir::Value* output : graph.outputs()) proto.add_outputs(output->name());
  for (const auto& [name, value] : graph.attrs().values()) (*proto.mutable_attrs())[name] = AttrToProto(value);
  return proto;
}

absl::StatusOr<std::unique_ptr<ir::Graph>> GraphFromProto(const GraphProto& proto) {
  auto graph = std::make_unique<ir::Graph>(proto.name());
  for (const auto& [name, value] : proto.attrs()) {
    auto attr = AttrFromProto(value);
    if (!attr.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("graph '", proto.name(), "', attribute '", name, "': ", attr.status().message()));
    }
    graph->mutable_attrs().Set(name, *std::move(attr));
  }
  for (int i = 0; i < proto.nodes_size(); ++i) {
    absl::Status s = AddNodeFromProto(proto.nodes(i), *graph);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("graph '", proto.name(), "', ", DescribeNodeProto(proto.nodes(i), i), ": ", s.message()));
    }
  }
  for (const std::string& name : proto.outputs()) {
    ir::Value* value = graph->FindValue(name);
    if (value == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("graph '", proto.name(), "' returns %", name, ", which no node defines"));
    }
    graph->AddOutput(value);
  }
  DSRT_RETURN_IF_ERROR(ir::VerifyGraph(*graph));
  return graph;
}

}  // namespace dsrt::serialization
