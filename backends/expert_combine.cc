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
absl::Status BlocksTouched(const int32_t* ids, int64_t tokens, int64_t top_k, const ExpertPlacement& placement,
                           std::vector<bool>& touched) {
  touched.assign(tokens * placement.blocks, false);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t k = 0; k < top_k; ++k) {
      const int32_t id = ids[t * top_k + k];
      if (id < 0 || id >= placement.routed_experts) {
        return absl::OutOfRangeError(absl::StrCat("expert id ", id, " out of range"));
      }
      touched[t * placement.blocks + placement.BlockOfExpert(id)] = true;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CombineExperts(const float* partial, const int32_t* ids, int64_t tokens, int64_t hidden, int64_t top_k,
                            const ExpertPlacement& placement, Communicator& communicator, float* out,
                            ExpertCombineScratch* scratch) {
  const int world = communicator.world_size(), me = communicator.rank();
  if (world != placement.world_size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("experts placed on ", placement.world_size(), " ranks, the world has ", world));
  }
  std::vector<bool>& touched = scratch->touched;
  DSRT_RETURN_IF_ERROR(BlocksTouched(ids, tokens, top_k, placement, touched));
  auto contributes = [&](int rank, int64_t t) { return touched[t * placement.blocks + placement.BlockOfRank(rank)]; };
  auto owned_by = [&](int rank) { return tokens > rank ? (tokens - rank + world - 1) / world : 0; };

  // Rows this rank holds something for go to their token's owner, in token order.
  std::vector<int64_t> send_counts(world, 0), recv_counts(world, 0);
  std::vector<float>& send = scratch->send;
  send.clear();
  for (int owner = 0; owner < world; ++owner) {
    for (int64_t t = owner; t < tokens; t += world) {
      if (!contributes(me, t)) continue;
      send.insert(send.end(), partial + t * hidden, partial + (t + 1) * hidden);
      send_counts[owner] += hidden;
    }
  }
  int64_t received_values = 0;
  for (int q = 0; q < world; ++q) {
    for (int64_t t = me; t < tokens; t += world) recv_counts[q] += contributes(q, t) ? hidden : 0;
    received_values += recv_counts[q];
  }
  scratch->received.resize(std::max<int64_t>(1, received_values));
  DSRT_RETURN_IF_ERROR(communicator.AllToAll(send.data(), send_counts, scratch->received.data(), recv_counts));

  // This rank's tokens: the senders' rows added in rank order.
  std::vector<float>& sums = scratch->sums;
  sums.assign(std::max<int64_t>(1, owned_by(me) * hidden), 0.0f);
  const float* row = scratch->received.data();
  for (int q = 0; q < world; ++q) {
    for (int64_t i = 0, t = me; t < tokens; ++i, t += world) {
      if (!contributes(q, t)) continue;
      for (int64_t j = 0; j < hidden; ++j) sums[i * hidden + j] += row[j];
      row += hidden;
    }
  }

  std::vector<int64_t> gather_counts(world);
  for (int r = 0; r < world; ++r) gather_counts[r] = owned_by(r) * hidden;
  scratch->gathered.resize(tokens * hidden + 1);
  DSRT_RETURN_IF_ERROR(communicator.AllGather(sums.data(), scratch->gathered.data(), gather_counts));
  const float* from = scratch->gathered.data();
  for (int r = 0; r < world; ++r) {
    for (int64_t t = r; t < tokens; t += world, from += hidden) std::copy(from, from + hidden, out + t * hidden);
  }
  return absl::OkStatus();
}

}  // namespace dsrt::backends
