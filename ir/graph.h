#ifndef DSRT_IR_GRAPH_H_
#define DSRT_IR_GRAPH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "ir/attrs.h"
#include "ir/tensor_type.h"

namespace dsrt::ir {

class Node;

// The result of a node: its name is unique in the graph and is its only spelling
// in text, proto and dot.
class Value {
 public:
  Value(std::string name, TensorType type, Node* producer, int index)
      : name_(std::move(name)), type_(std::move(type)), producer_(producer), index_(index) {}

  const std::string& name() const { return name_; }
  const TensorType& type() const { return type_; }
  void set_type(TensorType type) { type_ = std::move(type); }
  Node* producer() const { return producer_; }
  int index() const { return index_; }

 private:
  friend class Graph;
  std::string name_;
  TensorType type_;
  Node* producer_;
  int index_;
};

class Node {
 public:
  const std::string& op() const { return op_; }
  // The layer (or other group) a node belongs to, e.g. "layers.3"; drawn as a cluster.
  const std::string& scope() const { return scope_; }
  void set_scope(std::string scope) { scope_ = std::move(scope); }

  const std::vector<Value*>& inputs() const { return inputs_; }
  Value* input(int i) const { return inputs_[i]; }
  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  void set_input(int i, Value* value) { inputs_[i] = value; }

  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  Value* output(int i = 0) const { return outputs_[i].get(); }

  const AttrMap& attrs() const { return attrs_; }
  AttrMap& mutable_attrs() { return attrs_; }

 private:
  friend class Graph;
  std::string op_;
  std::string scope_;
  std::vector<Value*> inputs_;
  std::vector<std::unique_ptr<Value>> outputs_;
  AttrMap attrs_;
};

// A DeepSeek model (or one rank's share of it) as a dataflow graph.
// Nodes are kept in topological order; `Parameter` nodes are the step's inputs,
// `Constant` nodes name entries of the weight table, and `outputs()` are the results.
class Graph {
 public:
  explicit Graph(std::string name = "main") : name_(std::move(name)) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  const std::string& name() const { return name_; }

  // Facts about the whole graph that a pass records for the runtime (plan-memory's
  // arena size); printed, parsed and serialized with the graph.
  const AttrMap& attrs() const { return attrs_; }
  AttrMap& mutable_attrs() { return attrs_; }

  // Appends a node whose outputs get the given types; `output_names` may be
  // shorter than `output_types` or hold empty names, which are then generated.
  Node* AddNode(std::string op, std::vector<Value*> inputs, AttrMap attrs, std::vector<TensorType> output_types,
                std::vector<std::string> output_names = {}, std::string scope = "");

  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  int num_nodes() const { return static_cast<int>(nodes_.size()); }

  const std::vector<Value*>& outputs() const { return outputs_; }
  void AddOutput(Value* value) { outputs_.push_back(value); }
  void SetOutput(int i, Value* value) { outputs_[i] = value; }

  Value* FindValue(absl::string_view name) const;
  std::vector<Node*> Parameters() const;
  Node* FindParameter(absl::string_view name) const;

  // Every use of `from` (node inputs and graph outputs) becomes `to`.
  void ReplaceAllUsesWith(Value* from, Value* to);
  // Nodes that read `value`.
  std::vector<Node*> Users(const Value* value) const;
  // Removes the given nodes; their outputs must no longer be used.
  void RemoveNodes(const std::vector<Node*>& dead);
  // Re-establishes topological order after a pass appended nodes out of order.
  absl::Status TopologicalSort();

  std::string UniqueValueName(absl::string_view hint);

 private:
  std::string name_;
  AttrMap attrs_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<Value*> outputs_;
  absl::flat_hash_map<std::string, Value*> values_by_name_;
  int64_t next_value_id_ = 0;
};

}  // namespace dsrt::ir

#endif  // DSRT_IR_GRAPH_H_
