#ifndef DSRT_IR_WEIGHTS_H_
#define DSRT_IR_WEIGHTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ir/dtype.h"

namespace dsrt::ir {

// Bytes of one weight, owned elsewhere (an mmap'd engine or checkpoint).
struct WeightView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  int64_t bytes = 0;
};

// The weight table a graph's Constant nodes name. The graph never holds bytes.
class WeightStore {
 public:
  virtual ~WeightStore() = default;
  virtual absl::StatusOr<WeightView> Get(absl::string_view name) const = 0;
};

}  // namespace dsrt::ir

#endif  // DSRT_IR_WEIGHTS_H_
