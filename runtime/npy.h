#ifndef DSRT_RUNTIME_NPY_H_
#define DSRT_RUNTIME_NPY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace dsrt::runtime {

// Writes a C-order float32 array in NumPy's .npy format (version 1.0).
absl::Status WriteNpyF32(const std::string& path, const std::vector<float>& data, const std::vector<int64_t>& shape);

}  // namespace dsrt::runtime

#endif  // DSRT_RUNTIME_NPY_H_
