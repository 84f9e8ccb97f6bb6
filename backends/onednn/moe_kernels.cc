// FusedMoE and QFusedMoE: tokens grouped by expert, one GEMM per projection per
// expert over just its tokens, the weighted results added back in expert order.

#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backends/onednn/kernel.h"
#include "backends/onednn/quantized_linear.h"
#include "ir/status_macros.h"

namespace dsrt::backends::onednn {
namespace {

// One expert's projections: y = down(silu(gate x) * up x).
class ExpertMlp {
 public:
  virtual ~ExpertMlp() = default;
  // x [m, hidden] → gate_up [m, 2 * inter] (gate then up).
  virtual void GateUp(const float* x, int64_t m, float* gate_up) = 0;
  virtual void Down(const float* act, int64_t m, float* y) = 0;
};

class PackedExpert : public ExpertMlp {
 public:
  PackedExpert(PackedLinear* gate_up, PackedLinear* down) : gate_up_(gate_up), down_(down) {}
  void GateUp(const float* x, int64_t m, float* gate_up) override { gate_up_->Run(x, m, gate_up); }
  void Down(const float* act, int64_t m, float* y) override { down_->Run(act, m, y); }

 private:
  PackedLinear *gate_up_, *down_;
};

class QuantizedExpert : public ExpertMlp {
 public:
  QuantizedExpert(QuantizedLinear gate_up, QuantizedLinear down) : gate_up_(std::move(gate_up)), down_(std::move(down)) {}
  void GateUp(const float* x, int64_t m, float* gate_up) override { gate_up_.Run(x, m, gate_up); }
  void Down(const float* act, int64_t m, float* y) override { down_.Run(act, m, y); }

 private:
  QuantizedLinear gate_up_, down_;
};

// The experts a node holds: ids first .. first + count - 1 of the layer's `routed`
// (an expert-parallel rank holds a share; tokens routed elsewhere are skipped).
struct ExpertRange {
  int64_t first = 0;
  int64_t routed = 0;
};

ExpertRange ExpertRangeOf(const ir::Node& node, int64_t experts) {
  return {node.attrs().IntOr("first_expert", 0), node.attrs().IntOr("routed_experts", experts)};
}

class MoeKernel : public Kernel {
 public:
  MoeKernel(std::vector<std::unique_ptr<ExpertMlp>> experts, ExpertRange range, int64_t inter, int x, int ids,
            int weights, int out)
      : experts_(std::move(experts)), range_(range), inter_(inter), x_(x), ids_(ids), weights_(weights), out_(out) {}

  absl::Status Run(StepContext& ctx) override {
    const int64_t tokens = ctx.tokens(), top_k = ctx.Dims(ids_)[1], hidden = ctx.Dims(x_)[1];
    DSRT_RETURN_IF_ERROR(GroupByExpert(ctx, tokens, top_k));
    float* y = ctx.F(out_);
    std::fill(y, y + tokens * hidden, 0.0f);
    const float* x = ctx.F(x_);
    for (size_t e = 0; e < experts_.size(); ++e) {
      const auto& group = routed_[e];
      const int64_t m = static_cast<int64_t>(group.size());
      if (m == 0) continue;
      xe_.resize(m * hidden);
      for (int64_t i = 0; i < m; ++i) std::memcpy(xe_.data() + i * hidden, x + group[i].first * hidden, hidden * 4);
      gate_up_.resize(m * 2 * inter_);
      experts_[e]->GateUp(xe_.data(), m, gate_up_.data());
      act_.resize(m * inter_);
      for (int64_t i = 0; i < m; ++i) {
        const float* g = gate_up_.data() + i * 2 * inter_;
        const float* u = g + inter_;
        for (int64_t j = 0; j < inter_; ++j) {
          const float silu = static_cast<float>(g[j] / (1.0 + std::exp(-static_cast<double>(g[j]))));
          act_[i * inter_ + j] = silu * u[j];
        }
      }
      down_.resize(m * hidden);
      experts_[e]->Down(act_.data(), m, down_.data());
      for (int64_t i = 0; i < m; ++i) {
        float* yt = y + group[i].first * hidden;
        const float* d = down_.data() + i * hidden;
        const float w = group[i].second;
        for (int64_t j = 0; j < hidden; ++j) yt[j] += d[j] * w;
      }
    }
    return absl::OkStatus();
  }

 private:
  // routed_[e]: (token, routing weight) in token order; a token that picked an expert
  // twice carries the summed weight, as the per-expert graph does.
  absl::Status GroupByExpert(StepContext& ctx, int64_t tokens, int64_t top_k) {
    routed_.resize(experts_.size());
    for (auto& group : routed_) group.clear();
    const int32_t* ids = ctx.I(ids_);
    const float* weights = ctx.F(weights_);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t k = 0; k < top_k; ++k) {
        const int32_t id = ids[t * top_k + k];
        if (id < 0 || id >= range_.routed) return absl::OutOfRangeError(absl::StrCat("expert id ", id, " out of range"));
        const int64_t e = id - range_.first;
        if (e < 0 || e >= static_cast<int64_t>(experts_.size())) continue;  // another rank's expert
        auto& group = routed_[e];
        if (!group.empty() && group.back().first == t) group.back().second += weights[t * top_k + k];
        else group.push_back({t, 0.0f + weights[t * top_k + k]});
      }
    }
    return absl::OkStatus();
  }

  std::vector<std::unique_ptr<ExpertMlp>> experts_;
  ExpertRange range_;
  int64_t inter_;
  int x_, ids_, weights_, out_;
  std::vector<std::vector<std::pair<int64_t, float>>> routed_;
  std::vector<float> xe_, gate_up_, act_, down_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeFusedMoe(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(int64_t experts, node.attrs().GetInt("num_experts"));
  std::vector<std::unique_ptr<ExpertMlp>> mlps;
  for (int64_t e = 0; e < experts; ++e) {
    const int gate = static_cast<int>(3 + e), up = static_cast<int>(3 + experts + e);
    const int down = static_cast<int>(3 + 2 * experts + e);
    DSRT_ASSIGN_OR_RETURN(PackedLinear * gate_up, c.Pack(node, {gate, up}));
    DSRT_ASSIGN_OR_RETURN(PackedLinear * down_proj, c.Pack(node, {down}));
    mlps.push_back(std::make_unique<PackedExpert>(gate_up, down_proj));
  }
  const int64_t inter = node.input(3)->type().dims[0].size;
  return std::make_unique<MoeKernel>(std::move(mlps), ExpertRangeOf(node, experts), inter, c.Index(node.input(0)),
                                     c.Index(node.input(1)), c.Index(node.input(2)), c.Index(node.output()));
}

absl::StatusOr<std::unique_ptr<Kernel>> MakeQFusedMoe(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(int64_t experts, node.attrs().GetInt("num_experts"));
  DSRT_ASSIGN_OR_RETURN(int64_t group_size, node.attrs().GetInt("group_size"));
  // Expert weight i (gate 0..E-1, up E..2E-1, down 2E..3E-1): its values and scales.
  auto part = [&](int64_t i) -> absl::StatusOr<QuantizedLinear::Part> {
    const int value_input = static_cast<int>(3 + i), scale_input = static_cast<int>(3 + 3 * experts + i);
    QuantizedLinear::Part p;
    c.Prefault(node, value_input);
    c.Prefault(node, scale_input);
    DSRT_ASSIGN_OR_RETURN(p.values, c.Weight(node, value_input));
    DSRT_ASSIGN_OR_RETURN(p.scales, c.Weight(node, scale_input));
    return p;
  };
  // Copied into the arena, the engine's pages of an expert can go.
  auto release = [&](std::initializer_list<int64_t> weights) {
    for (int64_t i : weights) {
      c.Unneeded(node, static_cast<int>(3 + i));
      c.Unneeded(node, static_cast<int>(3 + 3 * experts + i));
    }
  };
  std::vector<std::unique_ptr<ExpertMlp>> mlps;
  for (int64_t e = 0; e < experts; ++e) {
    DSRT_ASSIGN_OR_RETURN(QuantizedLinear::Part gate, part(e));
    DSRT_ASSIGN_OR_RETURN(QuantizedLinear::Part up, part(experts + e));
    DSRT_ASSIGN_OR_RETURN(QuantizedLinear::Part down, part(2 * experts + e));
    DSRT_ASSIGN_OR_RETURN(QuantizedLinear gate_up,
                          QuantizedLinear::CreateStacked(c.dnnl(), {gate, up}, group_size, &c.arena()));
    DSRT_ASSIGN_OR_RETURN(QuantizedLinear down_proj,
                          QuantizedLinear::CreateStacked(c.dnnl(), {down}, group_size, &c.arena()));
    release({e, experts + e, 2 * experts + e});
    mlps.push_back(std::make_unique<QuantizedExpert>(std::move(gate_up), std::move(down_proj)));
  }
  const int64_t inter = node.input(3)->type().dims[0].size;
  return std::make_unique<MoeKernel>(std::move(mlps), ExpertRangeOf(node, experts), inter, c.Index(node.input(0)),
                                     c.Index(node.input(1)), c.Index(node.input(2)), c.Index(node.output()));
}

}  // namespace

void AddMoeKernels(absl::flat_hash_map<std::string, KernelFactory>& f) {
  f["FusedMoE"] = MakeFusedMoe;
  f["QFusedMoE"] = MakeQFusedMoe;
}

}  // namespace dsrt::backends::onednn
