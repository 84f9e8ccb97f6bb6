#include "passes/plan_memory.h"

#include <algorithm>
#include <limits>
#include <map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"
#include "passes/liveness.h"

namespace dsrt::passes {
namespace {

constexpr int64_t kAlignment = 64;
constexpr char kBytesPerToken[] = "arena_bytes_per_token";
constexpr char kFixedBytes[] = "arena_fixed_bytes";
constexpr char kOffsets[] = "arena_offsets";
constexpr char kFixedOffsets[] = "arena_fixed_offsets";

int64_t AlignUp(int64_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

// A value to place: alive from node `defined` through node `last`, `bytes` long.
struct Block {
  int defined;
  int last;
  int64_t bytes;
};

struct Layout {
  std::vector<int64_t> offsets;  // one per block
  int64_t size = 0;              // a multiple of kAlignment
};

bool LiveTogether(const Block& a, const Block& b) { return a.defined <= b.last && b.defined <= a.last; }

// The best-fit offset for `bytes` beside `taken` ((offset, bytes) pairs sorted by offset,
// which may overlap each other): the start of the smallest aligned gap it fits in, else
// the first aligned offset above them all.
int64_t BestFit(const std::vector<std::pair<int64_t, int64_t>>& taken, int64_t bytes) {
  int64_t best = -1, best_gap = std::numeric_limits<int64_t>::max();
  int64_t cursor = 0;
  for (const auto& [offset, size] : taken) {
    const int64_t gap = offset - cursor;
    if (gap >= bytes && gap < best_gap) {
      best = cursor;
      best_gap = gap;
    }
    cursor = std::max(cursor, AlignUp(offset + size));
  }
  return best < 0 ? cursor : best;
}

// Walking the graph: a node's dead inputs are released, then its outputs placed best fit
// among the values still alive. `blocks` are in graph order.
Layout PlaceInGraphOrder(const std::vector<Block>& blocks, int num_nodes) {
  std::vector<std::vector<int>> released_at(num_nodes + 2);
  for (int b = 0; b < static_cast<int>(blocks.size()); ++b) released_at[blocks[b].last + 1].push_back(b);
  Layout layout{std::vector<int64_t>(blocks.size(), -1), 0};
  std::map<int64_t, int64_t> live;  // offset -> bytes
  int next = 0;
  for (int n = 0; n <= num_nodes; ++n) {
    for (int b : released_at[n]) live.erase(layout.offsets[b]);
    for (; next < static_cast<int>(blocks.size()) && blocks[next].defined == n; ++next) {
      const int64_t offset = BestFit({live.begin(), live.end()}, blocks[next].bytes);
      live[offset] = blocks[next].bytes;
      layout.offsets[next] = offset;
      layout.size = std::max(layout.size, AlignUp(offset + blocks[next].bytes));
    }
  }
  return layout;
}

// Largest first (TFLite's greedy-by-size): each block goes best fit beside the
// already placed blocks it is alive together with.
Layout PlaceBySize(const std::vector<Block>& blocks) {
  std::vector<int> order(blocks.size());
  for (int b = 0; b < static_cast<int>(order.size()); ++b) order[b] = b;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return blocks[a].bytes > blocks[b].bytes; });
  Layout layout{std::vector<int64_t>(blocks.size(), -1), 0};
  std::vector<int> placed;
  for (int b : order) {
    std::vector<std::pair<int64_t, int64_t>> taken;
    for (int p : placed) {
      if (LiveTogether(blocks[b], blocks[p])) taken.push_back({layout.offsets[p], blocks[p].bytes});
    }
    std::sort(taken.begin(), taken.end());
    layout.offsets[b] = BestFit(taken, blocks[b].bytes);
    layout.size = std::max(layout.size, AlignUp(layout.offsets[b] + blocks[b].bytes));
    placed.push_back(b);
  }
  return layout;
}

// Beyond this many values, greedy-by-size's quadratic search is skipped (a graph whose
// experts were not fused has ~10^5).
constexpr size_t kMaxBlocksBySize = 20000;

// The smaller of the two greedy layouts.
Layout Place(const std::vector<Block>& blocks, int num_nodes) {
  Layout in_order = PlaceInGraphOrder(blocks, num_nodes);
  if (blocks.size() > kMaxBlocksBySize) return in_order;
  Layout by_size = PlaceBySize(blocks);
  return by_size.size < in_order.size ? by_size : in_order;
}

enum class Region { kPerToken = 0, kFixed = 1 };

// Where a value of `type` can live: per token when `tokens` is its only symbolic dim
// (once) and its dtype has whole bytes, fixed when it has no symbolic dim.
absl::StatusOr<Region> RegionOf(const ir::TensorType& type) {
  int tokens = 0;
  for (const ir::Dim& d : type.dims) {
    if (!d.is_symbolic()) continue;
    if (d.symbol != ir::kTokensDim || ++tokens > 1) {
      return absl::FailedPreconditionError(absl::StrCat(type.ToString(), " is not a fixed size per token"));
    }
  }
  if (tokens == 0) return Region::kFixed;
  if (ir::DTypeBits(type.dtype) % 8 != 0) {
    return absl::FailedPreconditionError(absl::StrCat(type.ToString(), " does not fill whole bytes per token"));
  }
  return Region::kPerToken;
}

struct Placement {
  Region region;
  int64_t offset;
};

struct Plan {
  absl::flat_hash_map<const ir::Value*, Placement> placements;
  int64_t bytes_per_token = 0;
  int64_t fixed_bytes = 0;
};

// Sizes come from ActivationLifetimes at tokens = 1: per token for token-proportional
// values, whole for fixed ones. Empty values still take a byte, for distinct offsets.
absl::StatusOr<Plan> MakePlan(const ir::Graph& graph) {
  for (const auto& node : graph.nodes()) {
    if (node->op() == "Constant" || node->op() == "Parameter") continue;
    for (int i = 0; i < node->num_outputs(); ++i) DSRT_RETURN_IF_ERROR(RegionOf(node->output(i)->type()).status());
  }
  DSRT_ASSIGN_OR_RETURN(std::vector<ValueLifetime> lifetimes, ActivationLifetimes(graph, {{ir::kTokensDim, 1}}));
  std::vector<Block> blocks[2];
  std::vector<const ir::Value*> values[2];
  for (const ValueLifetime& l : lifetimes) {
    DSRT_ASSIGN_OR_RETURN(Region region, RegionOf(l.value->type()));
    const int r = static_cast<int>(region);
    blocks[r].push_back({l.defined_at, l.last_used_at, std::max<int64_t>(l.bytes, 1)});
    values[r].push_back(l.value);
  }
  Plan plan;
  for (Region region : {Region::kPerToken, Region::kFixed}) {
    const int r = static_cast<int>(region);
    const Layout layout = Place(blocks[r], graph.num_nodes());
    for (size_t b = 0; b < values[r].size(); ++b) plan.placements[values[r][b]] = {region, layout.offsets[b]};
    (region == Region::kPerToken ? plan.bytes_per_token : plan.fixed_bytes) = layout.size;
  }
  return plan;
}

// Sets or erases `name` in `attrs`; true when that changed them.
bool Update(ir::AttrMap& attrs, const std::string& name, const ir::AttrValue* value) {
  auto it = attrs.values().find(name);
  const bool had = it != attrs.values().end();
  if (value == nullptr) {
    attrs.Erase(name);
    return had;
  }
  if (had && it->second == *value) return false;
  attrs.Set(name, *value);
  return true;
}

// Writes `plan` (or, when null, removes any plan) into the attributes.
bool Record(ir::Graph& graph, const Plan* plan) {
  bool changed = false;
  for (const auto& node : graph.nodes()) {
    std::vector<int64_t> offsets, fixed_offsets;
    bool planned = plan != nullptr && node->num_outputs() > 0, any_fixed = false;
    for (int i = 0; planned && i < node->num_outputs(); ++i) {
      auto it = plan->placements.find(node->output(i));
      if (it == plan->placements.end()) {
        planned = false;
        break;
      }
      const bool per_token = it->second.region == Region::kPerToken;
      offsets.push_back(per_token ? it->second.offset : -1);
      fixed_offsets.push_back(per_token ? -1 : it->second.offset);
      any_fixed = any_fixed || !per_token;
    }
    const ir::AttrValue offsets_attr = offsets, fixed_attr = fixed_offsets;
    changed |= Update(node->mutable_attrs(), kOffsets, planned ? &offsets_attr : nullptr);
    changed |= Update(node->mutable_attrs(), kFixedOffsets, planned && any_fixed ? &fixed_attr : nullptr);
  }
  const ir::AttrValue per_token = plan ? plan->bytes_per_token : 0, fixed = plan ? plan->fixed_bytes : 0;
  changed |= Update(graph.mutable_attrs(), kBytesPerToken, plan ? &per_token : nullptr);
  changed |= Update(graph.mutable_attrs(), kFixedBytes, plan && plan->fixed_bytes > 0 ? &fixed : nullptr);
  return changed;
}

}  // namespace

absl::StatusOr<bool> PlanMemory::Run(ir::Graph& graph) {
  absl::StatusOr<Plan> plan = MakePlan(graph);
  if (absl::IsFailedPrecondition(plan.status())) return Record(graph, nullptr);  // not plannable: no plan
  if (!plan.ok()) return plan.status();
  return Record(graph, &*plan);
}

absl::StatusOr<int64_t> ArenaBytes(const ir::Graph& graph, int64_t tokens) {
  if (!graph.attrs().Has(kBytesPerToken)) {
    return absl::NotFoundError(absl::StrCat("graph '", graph.name(), "' has no memory plan"));
  }
  DSRT_ASSIGN_OR_RETURN(int64_t per_token, graph.attrs().GetInt(kBytesPerToken));
  return per_token * tokens + graph.attrs().IntOr(kFixedBytes, 0);
}

}  // namespace dsrt::passes
