#ifndef DSRT_BACKENDS_REFERENCE_REFERENCE_BACKEND_H_
#define DSRT_BACKENDS_REFERENCE_REFERENCE_BACKEND_H_

#include "backends/backend.h"

namespace dsrt::backends::reference {

// Runs a graph node by node with the plain kernels of kernels.cc. Slow and
// obviously right: the specification every other backend is tested against.
class ReferenceBackend : public Backend {
 public:
  explicit ReferenceBackend(const BackendOptions& options = {}) : communicator_(options.communicator) {}
  std::string name() const override { return "reference"; }
  bool Supports(absl::string_view op) const override;
  absl::StatusOr<std::unique_ptr<Executable>> Compile(const ir::Graph& graph,
                                                      const ir::WeightStore& weights) override;

 private:
  Communicator* communicator_;
};

}  // namespace dsrt::backends::reference

#endif  // DSRT_BACKENDS_REFERENCE_REFERENCE_BACKEND_H_
