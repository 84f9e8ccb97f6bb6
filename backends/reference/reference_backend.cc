#include "backends/reference/reference_backend.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "backends/reference/kernels.h"
#include "ir/status_macros.h"
#include "ir/verifier.h"

namespace dsrt::backends::reference {
namespace {

absl::StatusOr<Tensor> WeightToTensor(const ir::Value& value, const ir::WeightView& view) {
  DSRT_RETURN_IF_ERROR(CheckWeightView(value, view));
  const std::string& name = value.name();
  Tensor t;
  t.Allocate(view.dtype == ir::DType::kI32 ? ir::DType::kI32 : ir::DType::kF32, view.shape);
  t.dtype = view.dtype;
  const int64_t n = t.size();
  switch (view.dtype) {
    case ir::DType::kF32:
      std::memcpy(t.f.data(), view.data, n * sizeof(float));
      break;
    case ir::DType::kBF16:
      for (int64_t i = 0; i < n; ++i) t.f[i] = ir::BF16ToF32(static_cast<const uint16_t*>(view.data)[i]);
      break;
    case ir::DType::kF16:
      for (int64_t i = 0; i < n; ++i) t.f[i] = ir::F16ToF32(static_cast<const uint16_t*>(view.data)[i]);
      break;
    case ir::DType::kI32:
      std::memcpy(t.i.data(), view.data, n * sizeof(int32_t));
      break;
    case ir::DType::kI8:  // quantized weight values, kept as exact floats in `f`
      for (int64_t i = 0; i < n; ++i) t.f[i] = static_cast<const int8_t*>(view.data)[i];
      break;
    case ir::DType::kI4:  // two a byte, low nibble first
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t byte = static_cast<const uint8_t*>(view.data)[i / 2];
        const int nibble = i % 2 == 0 ? (byte & 0x0f) : (byte >> 4);
        t.f[i] = static_cast<float>(nibble >= 8 ? nibble - 16 : nibble);
      }
      break;
    default:
      return absl::UnimplementedError(
          absl::StrCat("weight '", name, "': the reference backend cannot read ", ir::DTypeName(view.dtype)));
  }
  return t;
}

class ReferenceExecutable : public Executable {
 public:
  explicit ReferenceExecutable(Communicator* communicator) : communicator_(communicator) {}

  absl::Status Init(const ir::Graph& graph, const ir::WeightStore& weights) {
    graph_ = &graph;
    int index = 0;
    for (const auto& node : graph.nodes()) {
      for (int i = 0; i < node->num_outputs(); ++i) slot_of_[node->output(i)] = index++;
    }
    values_.resize(index);
    is_constant_.assign(index, false);
    last_use_.assign(index, -1);
    for (int n = 0; n < graph.num_nodes(); ++n) {
      const ir::Node& node = *graph.nodes()[n];
      for (const ir::Value* input : node.inputs()) last_use_[slot_of_[input]] = n;
      if (node.op() != "Constant") continue;
      DSRT_ASSIGN_OR_RETURN(std::string weight_name, node.attrs().GetString("weight"));
      DSRT_ASSIGN_OR_RETURN(ir::WeightView view, weights.Get(weight_name));
      DSRT_ASSIGN_OR_RETURN(values_[slot_of_[node.output()]], WeightToTensor(*node.output(), view));
      is_constant_[slot_of_[node.output()]] = true;
    }
    for (const ir::Value* out : graph.outputs()) last_use_[slot_of_[out]] = graph.num_nodes();
    return absl::OkStatus();
  }

  absl::Status Run(const StepInput& step, KvCache& cache, StepOutput* out) override {
    DSRT_RETURN_IF_ERROR(BindParameters(step));
    KernelContext ctx{&step, &cache, communicator_};
    const auto& kernels = Kernels();
    for (int n = 0; n < graph_->num_nodes(); ++n) {
      const ir::Node& node = *graph_->nodes()[n];
      if (node.op() == "Parameter" || node.op() == "Constant") continue;
      auto kernel = kernels.find(node.op());
      if (kernel == kernels.end()) return absl::UnimplementedError(absl::StrCat("no reference kernel for ", node.op()));
      std::vector<const Tensor*> inputs;
      for (const ir::Value* v : node.inputs()) inputs.push_back(&values_[slot_of_[v]]);
      std::vector<Tensor*> outputs;
      for (int i = 0; i < node.num_outputs(); ++i) outputs.push_back(&values_[slot_of_[node.output(i)]]);
      if (absl::Status s = kernel->second(node, inputs, outputs, ctx); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat(ir::DescribeNode(node), ": ", s.message()));
      }
      for (Tensor* t : outputs) t->RoundToDType();
      ReleaseDead(node, n);
    }
    const Tensor& logits = values_[slot_of_[graph_->outputs()[0]]];
    out->vocab = logits.dims.back();
    DSRT_RETURN_IF_ERROR(
        SelectRows(logits.f.data(), logits.dims[0], out->vocab, step.logit_rows, &out->logits, &out->rows));
    out->hidden.clear();
    if (graph_->outputs().size() > 1) out->hidden = values_[slot_of_[graph_->outputs()[1]]].f;
    return absl::OkStatus();
  }

 private:
  absl::Status BindParameters(const StepInput& step) {
    for (ir::Node* param : graph_->Parameters()) {
      const std::string name = param->attrs().StringOr("name", "");
      Tensor& t = values_[slot_of_[param->output()]];
      if (name == "hidden") {
        const int64_t width = param->output()->type().dims.back().size;
        if (static_cast<int64_t>(step.hidden.size()) != step.num_tokens() * width) {
          return absl::InvalidArgumentError(absl::StrCat("step: 'hidden' needs ", step.num_tokens(), " x ", width,
                                                         " values, got ", step.hidden.size()));
        }
        t.Allocate(ir::DType::kF32, {step.num_tokens(), width});
        t.f = step.hidden;
        continue;
      }
      t.Allocate(ir::DType::kI32, {step.num_tokens()});
      if (name == "token_ids") t.i = step.token_ids;
      else if (name == "positions") t.i = step.positions;
      else return absl::InvalidArgumentError(absl::StrCat("graph parameter '", name, "' is unknown to the runtime"));
    }
    return absl::OkStatus();
  }

  // Frees every non-constant value whose last reader was node n.
  void ReleaseDead(const ir::Node& node, int n) {
    for (const ir::Value* v : node.inputs()) {
      const int slot = slot_of_[v];
      if (!is_constant_[slot] && last_use_[slot] == n) values_[slot] = Tensor();
    }
  }

  Communicator* communicator_;
  const ir::Graph* graph_ = nullptr;
  absl::flat_hash_map<const ir::Value*, int> slot_of_;
  std::vector<Tensor> values_;
  std::vector<bool> is_constant_;
  std::vector<int> last_use_;
};

}  // namespace

bool ReferenceBackend::Supports(absl::string_view op) const {
  return op == "Parameter" || op == "Constant" || Kernels().contains(op);
}

absl::StatusOr<std::unique_ptr<Executable>> ReferenceBackend::Compile(const ir::Graph& graph,
                                                                      const ir::WeightStore& weights) {
  DSRT_RETURN_IF_ERROR(CheckSupported(*this, graph));
  DSRT_RETURN_IF_ERROR(CheckCollectives(graph, communicator_));
  auto executable = std::make_unique<ReferenceExecutable>(communicator_);
  DSRT_RETURN_IF_ERROR(executable->Init(graph, weights));
  return std::unique_ptr<Executable>(std::move(executable));
}

}  // namespace dsrt::backends::reference
