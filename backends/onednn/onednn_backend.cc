#include "backends/onednn/onednn_backend.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "backends/onednn/cpu.h"
#include "backends/onednn/kernel.h"
#include "ir/status_macros.h"
#include "ir/verifier.h"

namespace dsrt::backends::onednn {

std::vector<int64_t> StepContext::Dims(int value) const {
  std::vector<int64_t> dims;
  for (const ir::Dim& d : slots_[value].dims) dims.push_back(d.is_symbolic() ? tokens() : d.size);
  return dims;
}

absl::StatusOr<ir::WeightView> CompileContext::Weight(const ir::Node& node, int input) const {
  const ValueSlot& slot = Slot(node.input(input));
  if (!slot.constant) {
    return absl::UnimplementedError(
        absl::StrCat("input ", input, " is computed, and the oneDNN backend needs a weight there"));
  }
  return slot.weight;
}

absl::StatusOr<std::vector<float>> CompileContext::WeightF32(const ir::Node& node, int input) const {
  DSRT_ASSIGN_OR_RETURN(ir::WeightView view, Weight(node, input));
  const int64_t n = ir::NumElements(view.shape);
  std::vector<float> out(n);
  switch (view.dtype) {
    case ir::DType::kF32:
      std::memcpy(out.data(), view.data, n * sizeof(float));
      return out;
    case ir::DType::kBF16:
      Bf16ToF32(static_cast<const uint16_t*>(view.data), out.data(), n);
      return out;
    case ir::DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = ir::F16ToF32(static_cast<const uint16_t*>(view.data)[i]);
      return out;
    default:
      return absl::UnimplementedError(
          absl::StrCat("weight '", node.input(input)->name(), "' is ", ir::DTypeName(view.dtype), ", not a float"));
  }
}

// The weight-table name a Constant value reads.
std::string ConstantName(const ir::Value& value) {
  return value.producer()->attrs().StringOr("weight", "");
}

void CompileContext::Prefault(const ir::Node& node, int input) const {
  weights_.Prefault(ConstantName(*node.input(input)));
}

void CompileContext::Unneeded(const ir::Node& node, int input) const {
  weights_.Unneeded(ConstantName(*node.input(input)));
}

absl::StatusOr<PackedLinear*> CompileContext::Pack(const ir::Node& node, const std::vector<int>& inputs) {
  std::string key;
  std::vector<PackedLinear::Part> parts;
  ir::DType dtype = ir::DType::kF32;
  int64_t k = 0;
  for (int input : inputs) {
    DSRT_ASSIGN_OR_RETURN(ir::WeightView view, Weight(node, input));
    if (view.shape.size() != 2) return absl::InvalidArgumentError("a linear weight must be 2-D");
    if (!parts.empty() && (view.dtype != dtype || view.shape[1] != k)) {
      return absl::InvalidArgumentError("stacked weights differ in dtype or width");
    }
    dtype = view.dtype;
    k = view.shape[1];
    parts.push_back({view.data, view.shape[0]});
    absl::StrAppend(&key, key.empty() ? "" : "+", node.input(input)->name());
  }
  auto it = packed_.by_name.find(key);
  if (it != packed_.by_name.end()) return it->second.get();
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<PackedLinear> linear, PackedLinear::Create(dnnl_, packed_.arena, parts, dtype, k, key));
  // The packed copy is what runs; the engine's pages of these weights can go.
  for (int input : inputs) weights_.Unneeded(ConstantName(*node.input(input)));
  return packed_.by_name.emplace(key, std::move(linear)).first->second.get();
}

absl::StatusOr<PackedLinear*> CompileContext::PackF32(const ir::Node& node, int input) {
  const std::string key = absl::StrCat(node.input(input)->name(), "@f32");
  auto it = packed_.by_name.find(key);
  if (it != packed_.by_name.end()) return it->second.get();
  DSRT_ASSIGN_OR_RETURN(ir::WeightView view, Weight(node, input));
  if (view.shape.size() != 2) return absl::InvalidArgumentError("a linear weight must be 2-D");
  DSRT_ASSIGN_OR_RETURN(std::vector<float> w, WeightF32(node, input));
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<PackedLinear> linear,
                        PackedLinear::Create(dnnl_, packed_.arena, {{w.data(), view.shape[0]}}, ir::DType::kF32, view.shape[1], key));
  return packed_.by_name.emplace(key, std::move(linear)).first->second.get();
}

void ParallelFor(int64_t n, int64_t cost_per_item, const std::function<void(int64_t, int64_t)>& body) {
  const int threads = omp_get_max_threads();
  if (threads <= 1 || n <= 1 || n * cost_per_item < 32768) {
    body(0, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const auto [begin, end] = ShareOf(n, omp_get_thread_num(), omp_get_num_threads());
    if (begin < end) body(begin, end);
  }
}

void ParallelRegion(const std::function<void(int, int)>& body) {
  const int threads = omp_get_max_threads();
  if (threads <= 1) return body(0, 1);
#pragma omp parallel num_threads(threads)
  body(omp_get_thread_num(), omp_get_num_threads());
}

void Barrier() {
#pragma omp barrier
}

std::pair<int64_t, int64_t> ShareOf(int64_t work, int thread, int threads) {
  return {work * thread / threads, work * (thread + 1) / threads};
}

const absl::flat_hash_map<std::string, KernelFactory>& KernelFactories() {
  static const auto* factories = [] {
    auto* f = new absl::flat_hash_map<std::string, KernelFactory>();
    AddElementwiseKernels(*f);
    AddLinearKernels(*f);
    AddAttentionKernels(*f);
    AddMoeKernels(*f);
    AddCollectiveKernels(*f);
    return f;
  }();
  return *factories;
}

namespace {

bool HasTokensDim(const ir::TensorType& type) {
  return std::any_of(type.dims.begin(), type.dims.end(), [](const ir::Dim& d) { return d.is_symbolic(); });
}

int64_t StaticElements(const ir::TensorType& type) {
  int64_t n = 1;
  for (const ir::Dim& d : type.dims) n *= d.is_symbolic() ? 1 : d.size;
  return n;
}

constexpr int64_t kAlign = 64;
int64_t AlignUp(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

class OneDnnExecutable : public Executable {
 public:
  OneDnnExecutable(Communicator* communicator, int threads) : communicator_(communicator), threads_(threads) {
    const char* level = std::getenv("DSRT_PROFILE");
    profile_ = level != nullptr;
    profile_by_shape_ = profile_ && std::string(level) == "2";
  }
  ~OneDnnExecutable() override {
    if (profile_) std::fprintf(stderr, "dsrt profile: arena %ld bytes per token\n", arena_bytes_per_token_);
    if (profile_) PrintProfile();
  }

  absl::Status Init(const ir::Graph& graph, const ir::WeightStore& weights) {
    graph_ = &graph;
    DSRT_RETURN_IF_ERROR(AssignSlots(graph, weights));
    CompileContext compile(dnnl_, weights, slots_, index_, LogitsBeforeGather(graph), packed_, communicator_);
    const auto& factories = KernelFactories();
    for (const auto& node : graph.nodes()) {
      if (node->op() == "Parameter" || node->op() == "Constant") continue;
      auto factory = factories.find(node->op());
      if (factory == factories.end()) {
        return absl::UnimplementedError(absl::StrCat("the oneDNN backend has no kernel for ", node->op()));
      }
      absl::StatusOr<std::unique_ptr<Kernel>> kernel;
      try {
        kernel = factory->second(*node, compile);
      } catch (const dnnl::error& e) {
        kernel = absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
      }
      if (!kernel.ok()) {
        return absl::Status(kernel.status().code(),
                            absl::StrCat(ir::DescribeNode(*node), ": ", kernel.status().message()));
      }
      steps_.push_back({node.get(), std::move(*kernel)});
    }
    return absl::OkStatus();
  }

  absl::Status Run(const StepInput& step, KvCache& cache, StepOutput* out) override {
    const int64_t tokens = step.num_tokens();
    if (tokens == 0) return absl::InvalidArgumentError("a step needs at least one token");
    // OpenMP's thread count is a setting of the calling thread: a server steps the
    // model from a thread of its own, not the one that compiled it.
    if (threads_ > 0 && omp_get_max_threads() != threads_) omp_set_num_threads(threads_);
    const auto step_start = std::chrono::steady_clock::now();
    const std::string step_kind = profile_ ? StepKind(step) : "";
    const size_t needed = static_cast<size_t>(arena_bytes_per_token_ * tokens + kAlign);
    if (arena_.size() < needed) arena_.resize(needed);
    uint8_t* base = reinterpret_cast<uint8_t*>(AlignUp(reinterpret_cast<intptr_t>(arena_.data())));
    StepContext ctx(step, cache, slots_, base);
    DSRT_RETURN_IF_ERROR(BindParameters(step, ctx));
    for (auto& [node, kernel] : steps_) {
      absl::Status status;
      const auto start = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
      try {
        status = kernel->Run(ctx);
      } catch (const dnnl::error& e) {
        status = absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
      }
      if (profile_) Record(*node, step_kind, std::chrono::steady_clock::now() - start);
      if (!status.ok()) return absl::Status(status.code(), absl::StrCat(ir::DescribeNode(*node), ": ", status.message()));
      RoundBf16Outputs(*node, ctx);
    }
    absl::Status copied = CopyOutputs(step, ctx, out);
    if (profile_) {
      auto& entry = profile_by_op_[absl::StrCat("step", step_kind)];
      entry.first += std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
      ++entry.second;
    }
    return copied;
  }

 private:
  // Every value's slot. Activations sit where plan-memory's `arena_offsets` put them
  // (bytes per token), the step's parameters after the planned arena; a graph without
  // a usable plan gets one region per value.
  absl::Status AssignSlots(const ir::Graph& graph, const ir::WeightStore& weights) {
    const bool planned = HasUsablePlan(graph);
    int64_t next = planned ? graph.attrs().IntOr("arena_bytes_per_token", 0) : 0;
    int64_t planned_end = next;
    for (const auto& node : graph.nodes()) {
      std::vector<int64_t> offsets;
      const bool use_plan = planned && node->op() != "Parameter" && node->op() != "Constant";
      if (use_plan) offsets = node->attrs().GetInts("arena_offsets").value_or(std::vector<int64_t>{});
      for (int i = 0; i < node->num_outputs(); ++i) {
        const ir::Value* value = node->output(i);
        ValueSlot slot;
        slot.dtype = value->type().dtype;
        slot.dims = value->type().dims;
        slot.elements_per_token = StaticElements(value->type());
        const int64_t bytes = AlignUp(slot.elements_per_token * 4);
        if (node->op() == "Constant") {
          DSRT_ASSIGN_OR_RETURN(std::string name, node->attrs().GetString("weight"));
          DSRT_ASSIGN_OR_RETURN(slot.weight, weights.Get(name));
          DSRT_RETURN_IF_ERROR(CheckWeightView(*value, slot.weight));
          slot.constant = true;
        } else if (use_plan) {
          slot.offset_per_token = offsets[i];
          planned_end = std::max(planned_end, slot.offset_per_token + bytes);
        } else {
          slot.offset_per_token = next;
          next += bytes;
        }
        index_[value] = static_cast<int>(slots_.size());
        slots_.push_back(std::move(slot));
      }
    }
    if (planned_end > graph.attrs().IntOr("arena_bytes_per_token", 0)) {
      return absl::InvalidArgumentError("the graph's memory plan places a value beyond its arena");
    }
    arena_bytes_per_token_ = next;
    return absl::OkStatus();
  }

  // A plan is usable when every planned activation scales with the token count and
  // takes 4 bytes a value (the arena holds bf16-typed values as f32).
  static bool HasUsablePlan(const ir::Graph& graph) {
    if (!graph.attrs().Has("arena_bytes_per_token") || graph.attrs().IntOr("arena_fixed_bytes", 0) != 0) return false;
    for (const auto& node : graph.nodes()) {
      if (node->op() == "Constant" || node->op() == "Parameter") continue;
      auto offsets = node->attrs().GetInts("arena_offsets");
      if (!offsets.ok() || static_cast<int>(offsets->size()) != node->num_outputs()) return false;
      for (int i = 0; i < node->num_outputs(); ++i) {
        const ir::TensorType& type = node->output(i)->type();
        if (!HasTokensDim(type) || ir::DTypeBytes(type.dtype, 1) != 4 || (*offsets)[i] < 0) return false;
      }
    }
    return true;
  }

  absl::Status BindParameters(const StepInput& step, StepContext& ctx) {
    for (ir::Node* param : graph_->Parameters()) {
      const std::string name = param->attrs().StringOr("name", "");
      const int value = index_.at(param->output());
      if (name == "token_ids") {
        std::copy(step.token_ids.begin(), step.token_ids.end(), ctx.I(value));
      } else if (name == "positions") {
        if (step.positions.size() != step.token_ids.size()) return absl::InvalidArgumentError("positions ≠ tokens");
        std::copy(step.positions.begin(), step.positions.end(), ctx.I(value));
      } else if (name == "hidden") {
        if (static_cast<int64_t>(step.hidden.size()) != ctx.Elements(value)) {
          return absl::InvalidArgumentError(absl::StrCat("step: 'hidden' needs ", ctx.Elements(value), " values, got ",
                                                         step.hidden.size()));
        }
        std::copy(step.hidden.begin(), step.hidden.end(), ctx.F(value));
      } else {
        return absl::InvalidArgumentError(absl::StrCat("graph parameter '", name, "' is unknown to the runtime"));
      }
    }
    if (step.sequence_slots.size() != step.token_ids.size()) {
      return absl::InvalidArgumentError("a step needs one sequence slot per token");
    }
    return absl::OkStatus();
  }

  void RoundBf16Outputs(const ir::Node& node, StepContext& ctx) {
    for (int i = 0; i < node.num_outputs(); ++i) {
      const int value = index_.at(node.output(i));
      if (slots_[value].dtype != ir::DType::kBF16) continue;
      float* data = ctx.F(value);
      for (int64_t e = 0; e < ctx.Elements(value); ++e) data[e] = ir::RoundToBF16(data[e]);
    }
  }

  absl::Status CopyOutputs(const StepInput& step, StepContext& ctx, StepOutput* out) {
    const int logits = index_.at(graph_->outputs()[0]);
    const std::vector<int64_t> dims = ctx.Dims(logits);
    out->vocab = dims.back();
    const float* data = ctx.F(logits);
    if (ctx.logits_selected || step.logit_rows.empty()) {
      out->rows = step.logit_rows.empty() ? step.num_tokens() : static_cast<int64_t>(step.logit_rows.size());
      out->logits.assign(data, data + out->rows * out->vocab);
    } else {
      DSRT_RETURN_IF_ERROR(SelectRows(data, step.num_tokens(), out->vocab, step.logit_rows, &out->logits, &out->rows));
    }
    out->hidden.clear();
    if (graph_->outputs().size() > 1) {
      const int hidden = index_.at(graph_->outputs()[1]);
      out->hidden.assign(ctx.F(hidden), ctx.F(hidden) + ctx.Elements(hidden));
    }
    return absl::OkStatus();
  }

  // DSRT_PROFILE=1: seconds per op kind, split into decode steps (one token from each
  // sequence, batched or not) and prefills, printed to stderr when the executable goes.
  static std::string StepKind(const StepInput& step) {
    const absl::flat_hash_set<int32_t> slots(step.sequence_slots.begin(), step.sequence_slots.end());
    if (static_cast<int64_t>(slots.size()) != step.num_tokens()) return " (prefill)";
    return step.num_tokens() == 1 ? " (1 token)" : absl::StrCat(" (decode, batch ", step.num_tokens(), ")");
  }
  void Record(const ir::Node& node, const std::string& kind, std::chrono::steady_clock::duration elapsed) {
    const std::string shape = profile_by_shape_ ? node.output(0)->type().ToString() : "";
    auto& entry = profile_by_op_[absl::StrCat(node.op(), shape, kind)];
    entry.first += std::chrono::duration<double>(elapsed).count();
    ++entry.second;
  }
  void PrintProfile() const {
    std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(profile_by_op_.begin(), profile_by_op_.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::fprintf(stderr, "dsrt profile (op kind: seconds, calls)\n");
    for (const auto& [op, entry] : rows) std::fprintf(stderr, "  %-28s %9.4f s %8ld\n", op.c_str(), entry.first, entry.second);
  }

  // The LM head's output: the graph's logits, or what a vocabulary-parallel rank
  // computes of them before they are gathered.
  static const ir::Value* LogitsBeforeGather(const ir::Graph& graph) {
    const ir::Value* logits = graph.outputs()[0];
    const ir::Node* producer = logits->producer();
    if (producer != nullptr && producer->op() == "AllGather") return producer->input(0);
    return logits;
  }

  Communicator* communicator_;
  int threads_;  // 0: OpenMP's default
  bool profile_ = false;
  bool profile_by_shape_ = false;  // DSRT_PROFILE=2: one line per op and output shape
  absl::flat_hash_map<std::string, std::pair<double, int64_t>> profile_by_op_;
  Dnnl dnnl_;
  CompileContext::PackedWeights packed_;
  const ir::Graph* graph_ = nullptr;
  std::vector<ValueSlot> slots_;
  absl::flat_hash_map<const ir::Value*, int> index_;
  std::vector<std::pair<const ir::Node*, std::unique_ptr<Kernel>>> steps_;
  int64_t arena_bytes_per_token_ = 0;
  std::vector<uint8_t> arena_;
};

class OneDnnBackend : public Backend {
 public:
  explicit OneDnnBackend(const BackendOptions& options) : options_(options) {}
  std::string name() const override { return "onednn"; }
  bool Supports(absl::string_view op) const override {
    return op == "Parameter" || op == "Constant" || KernelFactories().contains(op);
  }
  absl::StatusOr<std::unique_ptr<Executable>> Compile(const ir::Graph& graph, const ir::WeightStore& weights) override {
    DSRT_RETURN_IF_ERROR(CheckSupported(*this, graph));
    DSRT_RETURN_IF_ERROR(CheckCollectives(graph, options_.communicator));
    if (options_.threads > 0) omp_set_num_threads(options_.threads);
    auto executable = std::make_unique<OneDnnExecutable>(options_.communicator, options_.threads);
    DSRT_RETURN_IF_ERROR(executable->Init(graph, weights));
    return std::unique_ptr<Executable>(std::move(executable));
  }

 private:
  BackendOptions options_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateOneDnnBackend(const BackendOptions& options) {
  return std::unique_ptr<Backend>(new OneDnnBackend(options));
}

}  // namespace dsrt::backends::onednn
