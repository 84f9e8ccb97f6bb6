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
  // A hint that the reader keeps its own copy of the weight (a backend that
  // repacked it): a store backed by a file mapping may drop those pages from
  // memory. The bytes stay readable (read again from the file when touched).
  virtual void Unneeded(absl::string_view name) const {}
  // A hint that the reader streams the weight's bytes in place on every step: a store
  // backed by a file mapping may map all its pages now rather than on first touch.
  virtual void Prefault(absl::string_view name) const {}
};

}  // namespace dsrt::ir

#endif  // DSRT_IR_WEIGHTS_H_
