#include "backends/expert_combine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"

namespace dsrt::backends {

absl::StatusOr<ExpertPlacement> ExpertPlacementOf(const ir::Node& node) {
  ExpertPlacement p;
  DSRT_ASSIGN_OR_RETURN(p.routed_experts, node.attrs().GetInt("routed_experts"));
  DSRT_ASSIGN_OR_RETURN(p.blocks, node.attrs().GetInt("expert_blocks"));
  DSRT_ASSIGN_OR_RETURN(p.ranks_per_block, node.attrs().GetInt("ranks_per_block"));
  if (p.blocks < 1 || p.ranks_per_block < 1 || p.routed_experts < 1 || p.routed_experts % p.blocks != 0) {
    return absl::InvalidArgumentError(absl::StrCat(p.routed_experts, " routed experts in ", p.blocks, " blocks on ",
                                                   p.ranks_per_block, " ranks each"));
  }
  return p;
}

namespace {

// touched[t * blocks + b]: whether token t picked an expert of block b.
absl::StatusOr<std::vector<bool>> BlocksTouched(const int32_t* ids, int64_t tokens, int64_t top_k,
                                                const ExpertPlacement& placement) {
  std::vector<bool> touched(tokens * placement.blocks, false);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t k = 0; k < top_k; ++k) {
      const int32_t id = ids[t * top_k + k];
      if (id < 0 || id >= placement.routed_experts) {
        return absl::OutOfRangeError(absl::StrCat("expert id ", id, " out of range"));
      }
      touched[t * placement.blocks + placement.BlockOfExpert(id)] = true;
    }
  }
  return touched;
}

}  // namespace

absl::Status CombineExperts(const float* partial, const int32_t* ids, int64_t tokens, int64_t hidden, int64_t top_k,
                            const ExpertPlacement& placement, Communicator& communicator, float* out) {
  const int world = communicator.world_size(), me = communicator.rank();
  if (world != placement.world_size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("experts placed on ", placement.world_size(), " ranks, the world has ", world));
  }
  DSRT_ASSIGN_OR_RETURN(std::vector<bool> touched, BlocksTouched(ids, tokens, top_k, placement));
  auto contributes = [&](int rank, int64_t t) { return touched[t * placement.blocks + placement.BlockOfRank(rank)]; };

  // Rows this rank holds something for go to their token's owner, in token order.
  std::vector<int64_t> send_counts(world, 0), recv_counts(world, 0);
  std::vector<float> send;
  for (int owner = 0; owner < world; ++owner) {
    for (int64_t t = owner; t < tokens; t += world) {
      if (!contributes(me, t)) continue;
      send.insert(send.end(), partial + t * hidden, partial + (t + 1) * hidden);
      send_counts[owner] += hidden;
    }
  }
  for (int q = 0; q < world; ++q) {
    for (int64_t t = me; t < tokens; t += world) recv_counts[q] += contributes(q, t) ? hidden : 0;
  }
  std::vector<float> received(std::max<int64_t>(1, [&] {
    int64_t n = 0;
    for (int64_t c : recv_counts) n += c;
    return n;
  }()));
  DSRT_RETURN_IF_ERROR(communicator.AllToAll(send.data(), send_counts, received.data(), recv_counts));

  // This rank's tokens: the senders' rows added in rank order.
  const int64_t owned = tokens > me ? (tokens - me + world - 1) / world : 0;
  std::vector<float> sums(std::max<int64_t>(1, owned * hidden), 0.0f);
  const float* row = received.data();
  for (int q = 0; q < world; ++q) {
    for (int64_t i = 0, t = me; t < tokens; ++i, t += world) {
      if (!contributes(q, t)) continue;
      for (int64_t j = 0; j < hidden; ++j) sums[i * hidden + j] += row[j];
      row += hidden;
    }
  }

  std::vector<int64_t> gather_counts(world);
  for (int r = 0; r < world; ++r) gather_counts[r] = (tokens > r ? (tokens - r + world - 1) / world : 0) * hidden;
  std::vector<float> gathered(tokens * hidden + 1);
  DSRT_RETURN_IF_ERROR(communicator.AllGather(sums.data(), gathered.data(), gather_counts));
  const float* from = gathered.data();
  for (int r = 0; r < world; ++r) {
    for (int64_t t = r; t < tokens; t += world, from += hidden) std::copy(from, from + hidden, out + t * hidden);
  }
  return absl::OkStatus();
}

}  // namespace dsrt::backends
