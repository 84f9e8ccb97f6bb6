#ifndef DSRT_BACKENDS_ROUTING_H_
#define DSRT_BACKENDS_ROUTING_H_

// The MoE router's selection rule, shared by every backend: from one token's
// expert logits to its top-k experts and their weights.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ir/graph.h"

namespace dsrt::backends {

struct RouterAttrs {
  std::string scoring, method;
  int top_k, n_group, topk_group;
  bool normalize;
  double scaling;
};

absl::StatusOr<RouterAttrs> ReadRouterAttrs(const ir::Node& node);

// Softmax or sigmoid scores; `bias` (may be null) shifts selection only; greedy,
// group-limited or noaux_tc top-k; weights normalized and scaled. Writes top_k ids
// (best first) and weights.
void Route(const RouterAttrs& attrs, const std::vector<double>& logits, const float* bias, int32_t* ids,
           float* weights);

}  // namespace dsrt::backends

#endif  // DSRT_BACKENDS_ROUTING_H_
