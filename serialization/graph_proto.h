#ifndef DSRT_SERIALIZATION_GRAPH_PROTO_H_
#define DSRT_SERIALIZATION_GRAPH_PROTO_H_

#include <memory>

#include "absl/status/statusor.h"
#include "ir/graph.h"
#include "serialization/engine.pb.h"

namespace dsrt::serialization {

// The graph as a proto: nodes in order, inputs and outputs by value name.
GraphProto GraphToProto(const ir::Graph& graph);

// Rebuilds a graph and verifies it (ir::VerifyGraph). An input naming no
// earlier value, a value name used twice, a bad dtype, dim or attribute is an
// error that names the node.
absl::StatusOr<std::unique_ptr<ir::Graph>> GraphFromProto(const GraphProto& proto);

}  // namespace dsrt::serialization

#endif  // DSRT_SERIALIZATION_GRAPH_PROTO_H_
