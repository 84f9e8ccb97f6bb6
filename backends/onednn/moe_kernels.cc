// FusedMoE and QFusedMoE: tokens grouped by expert, one GEMM per projection per
// expert over just its tokens, the weighted results added back in expert order.

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backends/onednn/cpu.h"
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
  QuantizedLinear& gate_up() { return gate_up_; }
  QuantizedLinear& down() { return down_; }

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

// Calls fn(item, begin, end) for thread `thread`'s share of the rows of items that have
// rows(i) rows costing cost(i) each: contiguous in item order and balanced by cost;
// neighbouring threads split an item at the same row.
template <typename Rows, typename Cost, typename Fn>
void ForEachShareOfRows(int64_t items, Rows rows, Cost cost, int thread, int threads, Fn fn) {
  int64_t total = 0;
  for (int64_t i = 0; i < items; ++i) total += rows(i) * cost(i);
  const auto [lo, hi] = ShareOf(total, thread, threads);
  int64_t offset = 0;
  for (int64_t i = 0; i < items && offset < hi; ++i) {
    const int64_t c = cost(i), length = rows(i) * c;
    const int64_t a = std::max(lo, offset), b = std::min(hi, offset + length);
    if (a < b) {
      const int64_t begin = (a - offset + c - 1) / c, end = (b - offset + c - 1) / c;
      if (begin < end) fn(i, begin, end);
    }
    offset += length;
  }
}

class MoeKernel : public Kernel {
 public:
  // `quantized`: the same experts when they are QuantizedExperts (few-token steps then
  // run them all in one parallel region), else empty.
  MoeKernel(std::vector<std::unique_ptr<ExpertMlp>> experts, std::vector<QuantizedExpert*> quantized,
            ExpertRange range, int64_t inter, int x, int ids, int weights, int out)
      : experts_(std::move(experts)),
        quantized_(std::move(quantized)),
        range_(range),
        inter_(inter),
        x_(x),
        ids_(ids),
        weights_(weights),
        out_(out),
        routed_(experts_.size()) {}

  absl::Status Run(StepContext& ctx) override {
    const int64_t tokens = ctx.tokens(), top_k = ctx.Dims(ids_)[1], hidden = ctx.Dims(x_)[1];
    DSRT_RETURN_IF_ERROR(GroupByExpert(ctx, tokens, top_k));
    const float* x = ctx.F(x_);
    RunFewTokenExperts(x, tokens, hidden);
    float* y = ctx.F(out_);
    std::fill(y, y + tokens * hidden, 0.0f);
    for (size_t e = 0; e < experts_.size(); ++e) {
      const Routed& group = routed_[e];
      const int64_t m = static_cast<int64_t>(group.tokens.size());
      if (m == 0) continue;
      const float* down = few_row_[e] >= 0 ? scratch().few_down.data() + few_row_[e] * hidden : RunExpert(e, x, hidden);
      for (int64_t i = 0; i < m; ++i) Axpy(group.weights[i], down + i * hidden, y + group.tokens[i] * hidden, hidden);
    }
    return absl::OkStatus();
  }

 private:
  // The tokens routed to one expert, in token order, and their routing weights; a token
  // that picked an expert twice carries the summed weight, as the per-expert graph does.
  struct Routed {
    std::vector<int64_t> tokens;
    std::vector<float> weights;
  };

  absl::Status GroupByExpert(StepContext& ctx, int64_t tokens, int64_t top_k) {
    for (Routed& group : routed_) {
      group.tokens.clear();
      group.weights.clear();
    }
    const int32_t* ids = ctx.I(ids_);
    const float* weights = ctx.F(weights_);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t k = 0; k < top_k; ++k) {
        const int32_t id = ids[t * top_k + k];
        if (id < 0 || id >= range_.routed) return absl::OutOfRangeError(absl::StrCat("expert id ", id, " out of range"));
        const int64_t e = id - range_.first;
        if (e < 0 || e >= static_cast<int64_t>(experts_.size())) continue;  // another rank's expert
        Routed& group = routed_[e];
        if (!group.tokens.empty() && group.tokens.back() == t) {
          group.weights.back() += weights[t * top_k + k];
        } else {
          group.tokens.push_back(t);
          group.weights.push_back(0.0f + weights[t * top_k + k]);
        }
      }
    }
    return absl::OkStatus();
  }

  // Scratch of the MoE kernels, shared by every layer's kernel run on a thread (a
  // layer's own would hold tokens × (3 inter + hidden) floats for every layer), grown
  // once and kept.
  struct Scratch {
    std::vector<float> xe, gate_up, act, down;
    QuantizedInput input;
    std::vector<QuantizedInput> expert_x, expert_act;
    std::vector<float> few_gate_up, few_act, few_down;
  };
  static Scratch& scratch() {
    thread_local Scratch s;
    return s;
  }

  // One expert on its own (a bf16/f32 expert, or without AVX-512 VNNI a quantized one
  // with more tokens than the plain dot products take):
  // returns its down projection, [its tokens, hidden].
  const float* RunExpert(size_t e, const float* x, int64_t hidden) {
    Scratch& sc = scratch();
    const Routed& group = routed_[e];
    const int64_t m = static_cast<int64_t>(group.tokens.size());
    sc.xe.resize(m * hidden);
    for (int64_t i = 0; i < m; ++i) std::memcpy(sc.xe.data() + i * hidden, x + group.tokens[i] * hidden, hidden * 4);
    sc.gate_up.resize(m * 2 * inter_);
    experts_[e]->GateUp(sc.xe.data(), m, sc.gate_up.data());
    sc.act.resize(m * inter_);
    for (int64_t i = 0; i < m; ++i) {
      const float* g = sc.gate_up.data() + i * 2 * inter_;
      SiluMul(g, g + inter_, inter_, /*round_silu_to_bf16=*/false, sc.act.data() + i * inter_);
    }
    sc.down.resize(m * hidden);
    experts_[e]->Down(sc.act.data(), m, sc.down.data());
    return sc.down.data();
  }

  // Every quantized expert the VNNI kernel takes, in one parallel region of three phases
  // (gate+up rows of all of them, SiLU, down rows of all of them) rather than two
  // parallel regions an expert: a decode step's experts are a few MB each, too little
  // for a region of their own. The activations are quantized once for all of them.
  // Sets few_row_[e] to the expert's first row in the few_down scratch, or -1 when it runs alone.
  void RunFewTokenExperts(const float* x, int64_t tokens, int64_t hidden) {
    few_row_.assign(experts_.size(), -1);
    few_.clear();
    int64_t rows = 0;
    for (size_t e = 0; e < quantized_.size(); ++e) {
      const int64_t m = static_cast<int64_t>(routed_[e].tokens.size());
      if (m == 0 || !QuantizedLinear::TakesVnni(m)) continue;
      few_row_[e] = rows;
      few_.push_back(static_cast<int64_t>(e));
      rows += m;
    }
    if (few_.empty()) return;
    Scratch& sc = scratch();
    if (sc.expert_x.size() < experts_.size()) {
      sc.expert_x.resize(experts_.size());
      sc.expert_act.resize(experts_.size());
    }
    const QuantizedLinear& first = quantized_[few_[0]]->gate_up();
    sc.input.Resize(tokens, hidden, first.group_size());
    sc.input.Quantize(x, 0, tokens);
    for (int64_t e : few_) {
      sc.expert_x[e].Gather(sc.input, routed_[e].tokens);
      const QuantizedLinear& down = quantized_[e]->down();
      sc.expert_act[e].Resize(static_cast<int64_t>(routed_[e].tokens.size()), inter_, down.group_size());
    }
    sc.few_gate_up.resize(rows * 2 * inter_);
    sc.few_act.resize(rows * inter_);
    sc.few_down.resize(rows * hidden);
    const int64_t items = static_cast<int64_t>(few_.size());
    auto expert = [&](int64_t i) { return few_[i]; };
    auto tokens_of = [&](int64_t i) { return static_cast<int64_t>(routed_[expert(i)].tokens.size()); };
    // A row block's cost: reading it (about two tokens' arithmetic) and a token's dot products.
    auto block_cost = [&](int64_t i) { return tokens_of(i) + 2; };
    ParallelRegion([&](int thread, int threads) {
      ForEachShareOfRows(
          items, [&](int64_t i) { return quantized_[expert(i)]->gate_up().row_blocks(); }, block_cost, thread,
          threads, [&](int64_t i, int64_t begin, int64_t end) {
            const int64_t e = expert(i);
            quantized_[e]->gate_up().VnniRowBlocks(sc.expert_x[e].view(), begin, end,
                                              sc.few_gate_up.data() + few_row_[e] * 2 * inter_);
          });
      Barrier();
      ForEachShareOfRows(
          items, tokens_of, [](int64_t) { return 1; }, thread, threads,
          [&](int64_t i, int64_t begin, int64_t end) {
            const int64_t e = expert(i);
            float* act = sc.few_act.data() + few_row_[e] * inter_;
            for (int64_t t = begin; t < end; ++t) {
              const float* g = sc.few_gate_up.data() + (few_row_[e] + t) * 2 * inter_;
              SiluMul(g, g + inter_, inter_, /*round_silu_to_bf16=*/false, act + t * inter_);
            }
            sc.expert_act[e].Quantize(act + begin * inter_, begin, end - begin);
          });
      Barrier();
      ForEachShareOfRows(
          items, [&](int64_t i) { return quantized_[expert(i)]->down().row_blocks(); }, block_cost, thread, threads,
          [&](int64_t i, int64_t begin, int64_t end) {
            const int64_t e = expert(i);
            quantized_[e]->down().VnniRowBlocks(sc.expert_act[e].view(), begin, end, sc.few_down.data() + few_row_[e] * hidden);
          });
    });
  }

  std::vector<std::unique_ptr<ExpertMlp>> experts_;
  std::vector<QuantizedExpert*> quantized_;
  ExpertRange range_;
  int64_t inter_;
  int x_, ids_, weights_, out_;
  std::vector<Routed> routed_;
  std::vector<int64_t> few_, few_row_;
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
  return std::make_unique<MoeKernel>(std::move(mlps), std::vector<QuantizedExpert*>{}, ExpertRangeOf(node, experts),
                                     inter, c.Index(node.input(0)), c.Index(node.input(1)), c.Index(node.input(2)),
                                     c.Index(node.output()));
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
  std::vector<QuantizedExpert*> quantized;
  for (int64_t e = 0; e < experts; ++e) {
    DSRT_ASSIGN_OR_RETURN(QuantizedLinear::Part gate, part(e));
    DSRT_ASSIGN_OR_RETURN(QuantizedLinear::Part up, part(experts + e));
    DSRT_ASSIGN_OR_RETURN(QuantizedLinear::Part down, part(2 * experts + e));
    DSRT_ASSIGN_OR_RETURN(QuantizedLinear gate_up,
                          QuantizedLinear::CreateStacked(c.dnnl(), {gate, up}, group_size, c.arena()));
    DSRT_ASSIGN_OR_RETURN(QuantizedLinear down_proj,
                          QuantizedLinear::CreateStacked(c.dnnl(), {down}, group_size, c.arena()));
    release({e, experts + e, 2 * experts + e});
    auto expert = std::make_unique<QuantizedExpert>(std::move(gate_up), std::move(down_proj));
    quantized.push_back(expert.get());
    mlps.push_back(std::move(expert));
  }
  const int64_t inter = node.input(3)->type().dims[0].size;
  return std::make_unique<MoeKernel>(std::move(mlps), std::move(quantized), ExpertRangeOf(node, experts), inter,
                                     c.Index(node.input(0)), c.Index(node.input(1)), c.Index(node.input(2)),
                                     c.Index(node.output()));
}

}  // namespace

void AddMoeKernels(absl::flat_hash_map<std::string, KernelFactory>& f) {
  f["FusedMoE"] = MakeFusedMoe;
  f["QFusedMoE"] = MakeQFusedMoe;
}

}  // namespace dsrt::backends::onednn
