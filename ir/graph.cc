#include "ir/graph.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace dsrt::ir {

std::string Graph::UniqueValueName(absl::string_view hint) {
  std::string base = hint.empty() ? "v" : std::string(hint);
  if (!values_by_name_.contains(base)) return base;
  while (true) {
    std::string name = absl::StrCat(base, ".", next_value_id_++);
    if (!values_by_name_.contains(name)) return name;
  }
}

Node* Graph::AddNode(std::string op, std::vector<Value*> inputs, AttrMap attrs, std::vector<TensorType> output_types,
                     std::vector<std::string> output_names, std::string scope) {
  auto node = std::make_unique<Node>();
  node->op_ = std::move(op);
  node->inputs_ = std::move(inputs);
  node->attrs_ = std::move(attrs);
  node->scope_ = std::move(scope);
  for (size_t i = 0; i < output_types.size(); ++i) {
    std::string hint = i < output_names.size() ? output_names[i] : "";
    std::string name = UniqueValueName(hint.empty() ? absl::StrCat("v", next_value_id_++) : hint);
    auto value = std::make_unique<Value>(name, std::move(output_types[i]), node.get(), static_cast<int>(i));
    values_by_name_[name] = value.get();
    node->outputs_.push_back(std::move(value));
  }
  nodes_.push_back(std::move(node));
  return nodes_.back().get();
}

Value* Graph::FindValue(absl::string_view name) const {
  auto it = values_by_name_.find(name);
  return it == values_by_name_.end() ? nullptr : it->second;
}

std::vector<Node*> Graph::Parameters() const {
  std::vector<Node*> params;
  for (const auto& node : nodes_) {
    if (node->op() == "Parameter") params.push_back(node.get());
  }
  return params;
}

Node* Graph::FindParameter(absl::string_view name) const {
  for (Node* node : Parameters()) {
    if (node->attrs().StringOr("name", "") == name) return node;
  }
  return nullptr;
}

void Graph::ReplaceAllUsesWith(Value* from, Value* to) {
  for (const auto& node : nodes_) {
    for (Value*& input : node->inputs_) {
      if (input == from) input = to;
    }
  }
  for (Value*& output : outputs_) {
    if (output == from) output = to;
  }
}

std::vector<Node*> Graph::Users(const Value* value) const {
  std::vector<Node*> users;
  for (const auto& node : nodes_) {
    if (std::find(node->inputs_.begin(), node->inputs_.end(), value) != node->inputs_.end()) {
      users.push_back(node.get());
    }
  }
  return users;
}

void Graph::RemoveNodes(const std::vector<Node*>& dead) {
  absl::flat_hash_set<const Node*> dead_set(dead.begin(), dead.end());
  for (const Node* node : dead) {
    for (const auto& out : node->outputs_) values_by_name_.erase(out->name());
  }
  std::erase_if(nodes_, [&](const std::unique_ptr<Node>& n) { return dead_set.contains(n.get()); });
}

absl::Status Graph::TopologicalSort() {
  absl::flat_hash_set<const Value*> ready;
  std::vector<std::unique_ptr<Node>> pending = std::move(nodes_);
  nodes_.clear();
  while (!pending.empty()) {
    size_t placed = 0;
    for (auto& node : pending) {
      bool inputs_ready = std::all_of(node->inputs_.begin(), node->inputs_.end(),
                                      [&](const Value* v) { return ready.contains(v); });
      if (!inputs_ready) continue;
      for (const auto& out : node->outputs_) ready.insert(out.get());
      nodes_.push_back(std::move(node));
      ++placed;
    }
    std::erase_if(pending, [](const std::unique_ptr<Node>& n) { return n == nullptr; });
    if (placed == 0) {
      std::string culprit = pending.front()->op();
      for (auto& node : pending) nodes_.push_back(std::move(node));
      return absl::FailedPreconditionError(
          absl::StrCat("graph '", name_, "' has a cycle or a dangling input (at a '", culprit, "' node)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace dsrt::ir
