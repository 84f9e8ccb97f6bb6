#ifndef DSRT_IR_OP_REGISTRY_H_
#define DSRT_IR_OP_REGISTRY_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "ir/attrs.h"
#include "ir/tensor_type.h"

namespace dsrt::ir {

using InferTypesFn =
    std::function<absl::StatusOr<std::vector<TensorType>>(const AttrMap& attrs, absl::Span<const TensorType> inputs)>;
// Values a node keeps per token in its KV-cache slot (attention ops only).
using CacheRowFn = std::function<absl::StatusOr<int64_t>(const AttrMap& attrs, absl::Span<const TensorType> inputs)>;

// Everything the IR knows about one op, kept together as MLIR's ODS does:
// arity, attributes, shape inference and, for attention ops, the cache it owns.
struct OpSchema {
  std::string name;
  std::string summary;
  int min_inputs = 0;
  int max_inputs = 0;  // -1: any number
  int num_outputs = 1;
  std::vector<std::string> required_attrs;
  // Parameter and Constant declare their output types instead of inferring them.
  bool declares_outputs = false;
  InferTypesFn infer;
  CacheRowFn cache_row;  // null unless the op reads and writes a KV-cache slot
};

class OpRegistry {
 public:
  // The registry of every op dsrt knows, built on first use.
  static const OpRegistry& Global();

  void Register(OpSchema schema);
  const OpSchema* Find(absl::string_view op) const;
  std::vector<std::string> OpNames() const;

 private:
  absl::flat_hash_map<std::string, OpSchema> schemas_;
};

// Defined in ops.cc: the op set.
void RegisterCoreOps(OpRegistry& registry);

}  // namespace dsrt::ir

#endif  // DSRT_IR_OP_REGISTRY_H_
