#ifndef DSRT_BACKENDS_EXPERT_COMBINE_H_
#define DSRT_BACKENDS_EXPERT_COMBINE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "backends/communicator.h"
#include "ir/graph.h"

namespace dsrt::backends {

// Where the partition pass put a layer's routed experts: `blocks` equal blocks of
// consecutive ids, block b on ranks b * ranks_per_block .. (b + 1) * ranks_per_block - 1
// (which split each of its experts by columns).
struct ExpertPlacement {
  int64_t routed_experts = 0;
  int64_t blocks = 1;
  int64_t ranks_per_block = 1;

  int world_size() const { return static_cast<int>(blocks * ranks_per_block); }
  int64_t BlockOfExpert(int64_t id) const { return id / (routed_experts / blocks); }
  int64_t BlockOfRank(int rank) const { return rank / ranks_per_block; }
};

// The placement an ExpertCombine node's attrs describe; an error naming the attr.
absl::StatusOr<ExpertPlacement> ExpertPlacementOf(const ir::Node& node);

// The sum over ranks of each rank's `partial` [tokens, hidden] (its experts' weighted
// outputs), into `out` on every rank, exchanging only rows that carry something: token t
// is summed by rank t % world from the ranks holding one of its experts (`ids` [tokens,
// top_k], the same on every rank), in rank order, then gathered to all (AllToAll, then
// AllGather). Every rank gets the same bits.
// `scratch` holds the exchange buffers between calls, so that a step allocates nothing
// once they have grown.
struct ExpertCombineScratch {
  std::vector<bool> touched;
  std::vector<float> send, received, sums, gathered;
};
absl::Status CombineExperts(const float* partial, const int32_t* ids, int64_t tokens, int64_t hidden, int64_t top_k,
                            const ExpertPlacement& placement, Communicator& communicator, float* out,
                            ExpertCombineScratch* scratch);

}  // namespace dsrt::backends

#endif  // DSRT_BACKENDS_EXPERT_COMBINE_H_
