#ifndef DSRT_PASSES_PARTITION_H_
#define DSRT_PASSES_PARTITION_H_

#include <string>

#include "absl/status/status.h"
#include "passes/pass.h"

namespace dsrt::passes {

// How an engine is divided among ranks. The world is max(tp, ep) ranks.
//   tp: attention heads, dense MLPs and shared experts are split tensor-parallel over
//       tp ranks (1 or the whole world).
//   ep: routed experts are divided into ep blocks (ep divides the world); the
//       world / ep ranks that hold a block split each of its experts tensor-parallel.
// The LM head is split by vocabulary over the whole world.
struct PartitionOptions {
  int tp = 1;
  int ep = 1;
  int rank = 0;
  // How a layer's routed experts are summed over ranks: "allreduce" (AllReduce of every
  // token's row) or "alltoall" (ExpertCombine: only routed rows, AllToAll then AllGather).
  std::string moe_combine = "allreduce";

  int world_size() const { return tp > ep ? tp : ep; }
};

// An error naming the value when tp, ep or rank make no partition.
absl::Status CheckPartitionOptions(const PartitionOptions& options);

// Rewrites a whole-model graph (after mla-absorb and moe-fuse) into rank `rank`'s share,
// with the collectives that join it to the others:
//   attention    q (or q_b) and kv_b keep this rank's heads (rows), o_proj their columns;
//                AllReduce after o_proj. The latent path (q_a, kv_a, the cache) stays whole.
//   dense MLP    gate and up keep rows i0..i1 of the intermediate, down those columns;
//   and shared   AllReduce after down.
//   experts      FusedMoE keeps its block of experts (attrs first_expert, routed_experts),
//                each split as a dense MLP when several ranks share the block;
//                AllReduce after it (or ExpertCombine, with moe_combine "alltoall").
//   LM head      rows of this rank's vocabulary range; AllGather of the logits.
// AllReduce(a) + AllReduce(b) becomes AllReduce(a + b) (the MoE and the shared experts
// of a layer then cost one exchange). Sliced weights are derived Constants (recipe
// "slice", passes/weight_recipes.h). Sets graph attrs rank and world_size. A world of
// one changes nothing.
class Partition : public Pass {
 public:
  explicit Partition(PartitionOptions options) : options_(options) {}
  std::string name() const override { return "partition"; }
  absl::StatusOr<bool> Run(ir::Graph& graph) override;

 private:
  PartitionOptions options_;
};

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_PARTITION_H_
