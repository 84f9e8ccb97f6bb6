#include "runtime/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dsrt::runtime {
namespace {

absl::Status MpiStatus(int code, absl::string_view call) {
  if (code == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return absl::UnavailableError(absl::StrCat(call, ": ", absl::string_view(text, length)));
}

// Counts over 2^31 go in pieces: MPI's counts are ints.
constexpr int64_t kMaxChunk = int64_t{1} << 30;

class MpiCommunicator : public backends::Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  absl::Status AllReduceSum(float* data, int64_t count) override {
    for (int64_t done = 0; done < count; done += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - done));
      if (absl::Status s = MpiStatus(MPI_Allreduce(MPI_IN_PLACE, data + done, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                                     "MPI_Allreduce");
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

  absl::Status AllGather(const float* local, float* gathered, const std::vector<int64_t>& counts) override {
    std::vector<int> sizes, offsets;
    if (absl::Status s = Displacements(counts, &sizes, &offsets); !s.ok()) return s;
    return MpiStatus(MPI_Allgatherv(local, sizes[rank_], MPI_FLOAT, gathered, sizes.data(), offsets.data(), MPI_FLOAT,
                                    MPI_COMM_WORLD),
                     "MPI_Allgatherv");
  }

  absl::Status AllToAll(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                        const std::vector<int64_t>& recv_counts) override {
    std::vector<int> sizes_out, offsets_out, sizes_in, offsets_in;
    if (absl::Status s = Displacements(send_counts, &sizes_out, &offsets_out); !s.ok()) return s;
    if (absl::Status s = Displacements(recv_counts, &sizes_in, &offsets_in); !s.ok()) return s;
    return MpiStatus(MPI_Alltoallv(send, sizes_out.data(), offsets_out.data(), MPI_FLOAT, recv, sizes_in.data(),
                                   offsets_in.data(), MPI_FLOAT, MPI_COMM_WORLD),
                     "MPI_Alltoallv");
  }

  absl::Status Broadcast(void* data, int64_t bytes, int root) override {
    if (bytes > kMaxChunk) return absl::OutOfRangeError("Broadcast: over 2^30 bytes");
    return MpiStatus(MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }

 private:
  // MPI's int counts and offsets of pieces laid one after another in rank order.
  absl::Status Displacements(const std::vector<int64_t>& counts, std::vector<int>* sizes, std::vector<int>* offsets) {
    if (static_cast<int>(counts.size()) != world_) {
      return absl::InvalidArgumentError(absl::StrCat(counts.size(), " counts for ", world_, " ranks"));
    }
    int64_t offset = 0;
    for (int r = 0; r < world_; ++r) {
      if (counts[r] > kMaxChunk || offset > kMaxChunk) return absl::OutOfRangeError("over 2^30 values in one exchange");
      sizes->push_back(static_cast<int>(counts[r]));
      offsets->push_back(static_cast<int>(offset));
      offset += counts[r];
    }
    return absl::OkStatus();
  }

  int rank_ = 0;
  int world_ = 1;
};

}  // namespace

bool LaunchedByMpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<Distributed>> Distributed::Start(int* argc, char*** argv) {
  auto distributed = std::unique_ptr<Distributed>(new Distributed());
  if (!LaunchedByMpi()) {
    distributed->communicator_ = backends::SingleProcessCommunicator();
    return distributed;
  }
  // The server steps the model from a thread of its own, one MPI call at a time.
  int provided = 0;
  if (absl::Status s = MpiStatus(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
      !s.ok()) {
    return s;
  }
  distributed->mpi_ = true;
  // Errors come back as codes (and then as a Status naming the call), not as aborts.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  distributed->communicator_ = std::make_unique<MpiCommunicator>();
  return distributed;
}

Distributed::~Distributed() {
  if (mpi_) MPI_Finalize();
}

void Distributed::AbortAll(int code) {
  if (mpi_ && world_size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace dsrt::runtime
