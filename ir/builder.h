#ifndef DSRT_IR_BUILDER_H_
#define DSRT_IR_BUILDER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ir/graph.h"

namespace dsrt::ir {

// Appends nodes to a graph, inferring output types from the op registry.
// Errors are sticky: after the first failure every call returns null and
// `status()` says what went wrong, so model code reads as a straight line.
class GraphBuilder {
 public:
  explicit GraphBuilder(Graph& graph) : graph_(graph) {}

  // Nodes made from now on belong to `scope` ("layers.3"); empty for none.
  void SetScope(std::string scope) { scope_ = std::move(scope); }

  Value* Parameter(const std::string& name, TensorType type);
  Value* Constant(const std::string& weight_name, TensorType type);

  // A node of `op` with one output; `name` is a hint for the value's name.
  Value* Op(const std::string& op, std::vector<Value*> inputs, AttrMap attrs = {}, const std::string& name = "");
  // A node with several outputs.
  std::vector<Value*> MultiOp(const std::string& op, std::vector<Value*> inputs, AttrMap attrs,
                              std::vector<std::string> names);

  Value* Linear(Value* x, Value* weight, const std::string& name = "") { return Op("Linear", {x, weight}, {}, name); }
  Value* Add(Value* a, Value* b, const std::string& name = "") { return Op("Add", {a, b}, {}, name); }
  Value* Mul(Value* a, Value* b, const std::string& name = "") { return Op("Mul", {a, b}, {}, name); }
  Value* Slice(Value* x, int64_t axis, int64_t start, int64_t end, const std::string& name = "");
  Value* Reshape(Value* x, std::vector<int64_t> shape, const std::string& name = "");

  void Output(Value* value);

  const absl::Status& status() const { return status_; }

 private:
  Graph& graph_;
  std::string scope_;
  absl::Status status_;
};

}  // namespace dsrt::ir

#endif  // DSRT_IR_BUILDER_H_
