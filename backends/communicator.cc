#include "backends/communicator.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace dsrt::backends {
namespace {

absl::Status CheckCounts(const std::vector<int64_t>& counts, int world) {
  if (static_cast<int>(counts.size()) == world) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("AllGather: ", counts.size(), " counts for a world of ", world, " ranks"));
}

class SingleProcess : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  absl::Status AllReduceSum(float*, int64_t) override { return absl::OkStatus(); }
  absl::Status AllGather(const float* local, float* gathered, const std::vector<int64_t>& counts) override {
    if (absl::Status s = CheckCounts(counts, 1); !s.ok()) return s;
    std::copy(local, local + counts[0], gathered);
    return absl::OkStatus();
  }
  absl::Status AllToAll(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                        const std::vector<int64_t>& recv_counts) override {
    if (absl::Status s = CheckCounts(send_counts, 1); !s.ok()) return s;
    if (absl::Status s = CheckCounts(recv_counts, 1); !s.ok()) return s;
    if (send_counts[0] != recv_counts[0]) return absl::InvalidArgumentError("AllToAll: counts disagree");
    std::copy(send, send + send_counts[0], recv);
    return absl::OkStatus();
  }
  absl::Status Broadcast(void*, int64_t, int root) override {
    if (root == 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("Broadcast from rank ", root, " in a world of one"));
  }
};

// What the threads of an InProcessGroup share: each posts a pointer, then all meet at
// a barrier that counts generations so that it can be reused at once.
class Rendezvous {
 public:
  explicit Rendezvous(int world) : world_(world), posted_(world, nullptr) {}
  int world() const { return world_; }

  void Post(int rank, const void* data) { posted_[rank] = data; }
  const void* Posted(int rank) const { return posted_[rank]; }

  void Barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t generation = generation_;
    if (++arrived_ == world_) {
      arrived_ = 0;
      ++generation_;
      all_arrived_.notify_all();
      return;
    }
    all_arrived_.wait(lock, [&] { return generation_ != generation; });
  }

 private:
  const int world_;
  std::vector<const void*> posted_;
  std::mutex mutex_;
  std::condition_variable all_arrived_;
  int arrived_ = 0;
  int64_t generation_ = 0;
};

class InProcess : public Communicator {
 public:
  InProcess(std::shared_ptr<Rendezvous> rendezvous, std::shared_ptr<std::vector<const std::vector<int64_t>*>> counts,
            int rank)
      : shared_(std::move(rendezvous)), counts_(std::move(counts)), rank_(rank) {}
  int rank() const override { return rank_; }
  int world_size() const override { return shared_->world(); }

  absl::Status AllReduceSum(float* data, int64_t count) override {
    shared_->Post(rank_, data);
    shared_->Barrier();
    sum_.assign(count, 0.0f);
    for (int r = 0; r < world_size(); ++r) {
      const auto* other = static_cast<const float*>(shared_->Posted(r));
      for (int64_t i = 0; i < count; ++i) sum_[i] += other[i];
    }
    shared_->Barrier();  // everyone has read every buffer before any is overwritten
    std::copy(sum_.begin(), sum_.end(), data);
    return absl::OkStatus();
  }

  absl::Status AllGather(const float* local, float* gathered, const std::vector<int64_t>& counts) override {
    if (absl::Status s = CheckCounts(counts, world_size()); !s.ok()) return s;
    shared_->Post(rank_, local);
    shared_->Barrier();
    for (int r = 0; r < world_size(); ++r) {
      const auto* other = static_cast<const float*>(shared_->Posted(r));
      gathered = std::copy(other, other + counts[r], gathered);
    }
    shared_->Barrier();
    return absl::OkStatus();
  }

  absl::Status AllToAll(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                        const std::vector<int64_t>& recv_counts) override {
    if (absl::Status s = CheckCounts(send_counts, world_size()); !s.ok()) return s;
    if (absl::Status s = CheckCounts(recv_counts, world_size()); !s.ok()) return s;
    shared_->Post(rank_, send);
    send_counts_ = send_counts;
    counts_->at(rank_) = &send_counts_;
    shared_->Barrier();
    for (int q = 0; q < world_size(); ++q) {
      const std::vector<int64_t>& theirs = *counts_->at(q);
      if (theirs[rank_] != recv_counts[q]) {
        return absl::InvalidArgumentError(absl::StrCat("AllToAll: rank ", q, " sends ", theirs[rank_],
                                                       " values, rank ", rank_, " expects ", recv_counts[q]));
      }
      int64_t offset = 0;
      for (int p = 0; p < rank_; ++p) offset += theirs[p];
      const auto* from = static_cast<const float*>(shared_->Posted(q)) + offset;
      recv = std::copy(from, from + recv_counts[q], recv);
    }
    shared_->Barrier();
    return absl::OkStatus();
  }

  absl::Status Broadcast(void* data, int64_t bytes, int root) override {
    if (root < 0 || root >= world_size()) {
      return absl::InvalidArgumentError(absl::StrCat("Broadcast from rank ", root, " of ", world_size()));
    }
    shared_->Post(rank_, data);
    shared_->Barrier();
    if (rank_ != root) std::memcpy(data, shared_->Posted(root), bytes);
    shared_->Barrier();
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<Rendezvous> shared_;
  std::shared_ptr<std::vector<const std::vector<int64_t>*>> counts_;  // each rank's send counts, in AllToAll
  int rank_;
  std::vector<float> sum_;
  std::vector<int64_t> send_counts_;
};

}  // namespace

std::unique_ptr<Communicator> SingleProcessCommunicator() { return std::make_unique<SingleProcess>(); }

std::vector<std::unique_ptr<Communicator>> InProcessGroup(int world) {
  auto rendezvous = std::make_shared<Rendezvous>(world);
  auto counts = std::make_shared<std::vector<const std::vector<int64_t>*>>(world, nullptr);
  std::vector<std::unique_ptr<Communicator>> group;
  for (int r = 0; r < world; ++r) group.push_back(std::make_unique<InProcess>(rendezvous, counts, r));
  return group;
}

void InterleaveColumns(const float* flat, int64_t rows, const std::vector<int64_t>& counts, float* out) {
  const int64_t width = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  int64_t column = 0;
  for (int64_t count : counts) {
    for (int64_t row = 0; row < rows; ++row) {
      std::copy(flat + row * count, flat + (row + 1) * count, out + row * width + column);
    }
    flat += rows * count;
    column += count;
  }
}

}  // namespace dsrt::backends
