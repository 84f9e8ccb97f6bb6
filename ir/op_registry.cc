#include "ir/op_registry.h"

#include <algorithm>

namespace dsrt::ir {

const OpRegistry& OpRegistry::Global() {
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterCoreOps(*r);
    return r;
  }();
  return *registry;
}

void OpRegistry::Register(OpSchema schema) {
  std::string name = schema.name;
  schemas_[name] = std::move(schema);
}

const OpSchema* OpRegistry::Find(absl::string_view op) const {
  auto it = schemas_.find(op);
  return it == schemas_.end() ? nullptr : &it->second;
}

std::vector<std::string> OpRegistry::OpNames() const {
  std::vector<std::string> names;
  for (const auto& [name, schema] : schemas_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace dsrt::ir
