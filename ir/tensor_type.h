#ifndef DSRT_IR_TENSOR_TYPE_H_
#define DSRT_IR_TENSOR_TYPE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "ir/dtype.h"

namespace dsrt::ir {

// One dimension: a fixed size, or a symbol resolved at run time ("tokens").
struct Dim {
  int64_t size = 0;
  std::string symbol;

  static Dim Static(int64_t size) { return Dim{size, ""}; }
  static Dim Symbolic(std::string symbol) { return Dim{0, std::move(symbol)}; }
  bool is_symbolic() const { return !symbol.empty(); }
  bool operator==(const Dim& other) const = default;
};

// The symbol of the number of tokens a step runs.
inline constexpr char kTokensDim[] = "tokens";

struct TensorType {
  DType dtype = DType::kF32;
  std::vector<Dim> dims;

  int rank() const { return static_cast<int>(dims.size()); }
  bool operator==(const TensorType& other) const = default;
  // Product of the static dims; symbolic dims count as 1.
  int64_t StaticElements() const;
  bool IsFullyStatic() const;
  // "f32[tokens,64]"
  std::string ToString() const;
};

TensorType MakeType(DType dtype, std::vector<Dim> dims);
TensorType StaticType(DType dtype, const std::vector<int64_t>& dims);
absl::StatusOr<TensorType> ParseTensorType(absl::string_view text);

// Values of the symbols of one step: {"tokens": 12}.
using SymbolBindings = absl::flat_hash_map<std::string, int64_t>;

// Concrete dims of `type` under `bindings`; an unbound symbol is an error.
absl::StatusOr<std::vector<int64_t>> ResolveDims(const TensorType& type, const SymbolBindings& bindings);

int64_t NumElements(const std::vector<int64_t>& dims);

}  // namespace dsrt::ir

#endif  // DSRT_IR_TENSOR_TYPE_H_
