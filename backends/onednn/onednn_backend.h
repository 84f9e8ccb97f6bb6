#ifndef DSRT_BACKENDS_ONEDNN_ONEDNN_BACKEND_H_
#define DSRT_BACKENDS_ONEDNN_ONEDNN_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "backends/backend.h"

namespace dsrt::backends::onednn {

// Linears and expert GEMMs through oneDNN matmul primitives over weights packed
// once into its blocked layout; weight-only int8/int4, latent attention, norms,
// RoPE and routing in this folder's own kernels (AVX-512 where the CPU has it).
// One activation arena per executable, laid out by the graph's plan-memory attrs.
absl::StatusOr<std::unique_ptr<Backend>> CreateOneDnnBackend(const BackendOptions& options);

}  // namespace dsrt::backends::onednn

#endif  // DSRT_BACKENDS_ONEDNN_ONEDNN_BACKEND_H_
