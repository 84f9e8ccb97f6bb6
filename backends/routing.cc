#include "backends/routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "ir/status_macros.h"

namespace dsrt::backends {
namespace {

// Indices of the `k` largest of `scores` (ties: lower index first), best first.
std::vector<int> TopK(const std::vector<double>& scores, int k) {
  std::vector<int> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
  order.resize(k);
  return order;
}

// Experts a token may choose from: all of them, or those of the best groups.
std::vector<double> MaskToBestGroups(const std::vector<double>& selection, const RouterAttrs& a) {
  if (a.method == "greedy") return selection;
  const int experts = static_cast<int>(selection.size());
  const int per_group = experts / a.n_group;
  std::vector<double> group_scores(a.n_group);
  for (int g = 0; g < a.n_group; ++g) {
    std::vector<double> members(selection.begin() + g * per_group, selection.begin() + (g + 1) * per_group);
    std::sort(members.rbegin(), members.rend());
    // group_limited_greedy: the group's best score; noaux_tc: the sum of its best two.
    group_scores[g] = a.method == "noaux_tc" ? members[0] + (per_group > 1 ? members[1] : 0.0) : members[0];
  }
  std::vector<double> masked(experts, -std::numeric_limits<double>::infinity());
  for (int g : TopK(group_scores, a.topk_group)) {
    std::copy(selection.begin() + g * per_group, selection.begin() + (g + 1) * per_group, masked.begin() + g * per_group);
  }
  return masked;
}

}  // namespace

absl::StatusOr<RouterAttrs> ReadRouterAttrs(const ir::Node& node) {
  RouterAttrs a;
  const ir::AttrMap& m = node.attrs();
  DSRT_ASSIGN_OR_RETURN(a.scoring, m.GetString("scoring"));
  DSRT_ASSIGN_OR_RETURN(a.method, m.GetString("method"));
  DSRT_ASSIGN_OR_RETURN(int64_t top_k, m.GetInt("top_k"));
  DSRT_ASSIGN_OR_RETURN(int64_t n_group, m.GetInt("n_group"));
  DSRT_ASSIGN_OR_RETURN(int64_t topk_group, m.GetInt("topk_group"));
  DSRT_ASSIGN_OR_RETURN(int64_t normalize, m.GetInt("normalize"));
  DSRT_ASSIGN_OR_RETURN(a.scaling, m.GetDouble("scaling"));
  a.top_k = static_cast<int>(top_k);
  a.n_group = static_cast<int>(n_group);
  a.topk_group = static_cast<int>(topk_group);
  a.normalize = normalize != 0;
  return a;
}

void Route(const RouterAttrs& a, const std::vector<double>& logits, const float* bias, int32_t* ids,
           float* weights) {
  const int64_t experts = static_cast<int64_t>(logits.size());
  std::vector<double> scores(experts);
  if (a.scoring == "sigmoid") {
    for (int64_t e = 0; e < experts; ++e) scores[e] = 1.0 / (1.0 + std::exp(-logits[e]));
  } else {
    const double max_logit = *std::max_element(logits.begin(), logits.end());
    double total = 0;
    for (int64_t e = 0; e < experts; ++e) total += (scores[e] = std::exp(logits[e] - max_logit));
    for (double& s : scores) s /= total;
  }
  // The correction bias decides which experts are chosen, never how much they weigh.
  std::vector<double> selection = scores;
  if (bias != nullptr) {
    for (int64_t e = 0; e < experts; ++e) selection[e] += bias[e];
  }
  const std::vector<int> chosen = TopK(MaskToBestGroups(selection, a), a.top_k);
  double sum = 0;
  for (int e : chosen) sum += scores[e];
  for (int k = 0; k < a.top_k; ++k) {
    double weight = scores[chosen[k]];
    if (a.normalize) weight /= sum + 1e-20;
    ids[k] = chosen[k];
    weights[k] = static_cast<float>(weight * a.scaling);
  }
}

}  // namespace dsrt::backends
