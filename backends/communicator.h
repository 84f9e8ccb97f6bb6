#ifndef DSRT_BACKENDS_COMMUNICATOR_H_
#define DSRT_BACKENDS_COMMUNICATOR_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"

namespace dsrt::backends {

// The link between the ranks of a partitioned engine, which the collective kernels
// (AllReduce, AllGather) and the runtime's step loop use. Every rank calls the same
// collectives in the same order. Implementations: runtime's MPI one, a single process
// (world of one), and ranks as threads of one process (InProcessGroup).
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // data[i] becomes the sum of data[i] over every rank.
  virtual absl::Status AllReduceSum(float* data, int64_t count) = 0;
  // `gathered` becomes every rank's `local` one after another in rank order; rank r
  // sends counts[r] values (this rank: counts[rank()]).
  virtual absl::Status AllGather(const float* local, float* gathered, const std::vector<int64_t>& counts) = 0;
  // Personalized exchange: this rank sends send_counts[q] values to rank q and gets
  // recv_counts[q] from it; both buffers hold the pieces one after another in rank order.
  // recv_counts[q] must equal what rank q sends here.
  virtual absl::Status AllToAll(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                                const std::vector<int64_t>& recv_counts) = 0;
  // `bytes` bytes of `data` on every rank become those of rank `root`.
  virtual absl::Status Broadcast(void* data, int64_t bytes, int root) = 0;
};

// A world of one rank: the collectives copy or do nothing.
std::unique_ptr<Communicator> SingleProcessCommunicator();

// `world` ranks as threads of one process: each thread takes its own communicator and
// they meet in every collective. Sums run in rank order, so every rank gets the same
// bits. The communicators must outlive no group member's use; a collective that one
// rank never joins blocks the others (as MPI's do).
std::vector<std::unique_ptr<Communicator>> InProcessGroup(int world);

// Rows of a [rows, counts[r]] matrix from each rank, laid side by side: [rows, sum(counts)].
// `flat` holds the ranks' matrices one after another, as AllGather leaves them.
void InterleaveColumns(const float* flat, int64_t rows, const std::vector<int64_t>& counts, float* out);

}  // namespace dsrt::backends

#endif  // DSRT_BACKENDS_COMMUNICATOR_H_
