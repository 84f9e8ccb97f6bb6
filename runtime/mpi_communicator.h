#ifndef DSRT_RUNTIME_MPI_COMMUNICATOR_H_
#define DSRT_RUNTIME_MPI_COMMUNICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "backends/communicator.h"

namespace dsrt::runtime {

// The ranks this process belongs to: MPI's world when mpirun (or another PMIx
// launcher) started it, a world of one otherwise. MPI is initialized by Start and
// finalized when the object goes; there is at most one per process.
class Distributed {
 public:
  static absl::StatusOr<std::unique_ptr<Distributed>> Start(int* argc, char*** argv);
  ~Distributed();

  backends::Communicator& communicator() { return *communicator_; }
  int rank() const { return communicator_->rank(); }
  int world_size() const { return communicator_->world_size(); }

  // With several ranks, ends every rank's process (this one too) with `code`: a failing
  // rank calls it after printing its error, so that the others do not wait for it in
  // their next collective. Returns in a world of one.
  void AbortAll(int code);

 private:
  Distributed() = default;
  bool mpi_ = false;
  std::unique_ptr<backends::Communicator> communicator_;
};

// Whether a launcher started this process as one rank of several (mpirun's environment).
bool LaunchedByMpi();

}  // namespace dsrt::runtime

#endif  // DSRT_RUNTIME_MPI_COMMUNICATOR_H_
