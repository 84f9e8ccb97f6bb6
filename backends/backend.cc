#include "backends/backend.h"

#include "absl/strings/str_cat.h"
#include <algorithm>

#include "backends/onednn/onednn_backend.h"
#include "backends/reference/reference_backend.h"

namespace dsrt::backends {

StepInput StepInput::ForSequence(const std::vector<int32_t>& ids, int32_t start, int32_t slot) {
  StepInput step;
  step.token_ids = ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    step.positions.push_back(start + static_cast<int32_t>(i));
    step.sequence_slots.push_back(slot);
  }
  return step;
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(absl::string_view name, const BackendOptions& options) {
  if (name == "reference") return std::unique_ptr<Backend>(new reference::ReferenceBackend(options));
  if (name == "onednn") return onednn::CreateOneDnnBackend(options);
  return absl::InvalidArgumentError(absl::StrCat("unknown backend '", name, "' (have: onednn, reference)"));
}

std::vector<std::string> BackendNames() { return {"onednn", "reference"}; }

absl::Status SelectRows(const float* all, int64_t rows, int64_t width, const std::vector<int32_t>& wanted,
                        std::vector<float>* out, int64_t* out_rows) {
  if (wanted.empty()) {
    out->assign(all, all + rows * width);
    *out_rows = rows;
    return absl::OkStatus();
  }
  out->resize(wanted.size() * width);
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (wanted[i] < 0 || wanted[i] >= rows) {
      return absl::OutOfRangeError(absl::StrCat("logit row ", wanted[i], " outside the step's ", rows, " tokens"));
    }
    std::copy_n(all + wanted[i] * width, width, out->data() + i * width);
  }
  *out_rows = static_cast<int64_t>(wanted.size());
  return absl::OkStatus();
}

absl::Status CheckWeightView(const ir::Value& value, const ir::WeightView& view) {
  std::vector<int64_t> dims;
  for (const ir::Dim& d : value.type().dims) dims.push_back(d.size);
  if (dims != view.shape || value.type().dtype != view.dtype) {
    return absl::InvalidArgumentError(absl::StrCat("weight '", value.name(), "' is stored as ",
                                                   ir::DTypeName(view.dtype), " of another shape than the graph's ",
                                                   value.type().ToString()));
  }
  if (view.bytes < ir::DTypeBytes(view.dtype, ir::NumElements(dims))) {
    return absl::InvalidArgumentError(absl::StrCat("weight '", value.name(), "' holds ", view.bytes, " bytes, ",
                                                   value.type().ToString(), " needs more"));
  }
  return absl::OkStatus();
}

absl::Status CheckCollectives(const ir::Graph& graph, const Communicator* communicator) {
  const int64_t world = graph.attrs().IntOr("world_size", 1);
  const int64_t rank = graph.attrs().IntOr("rank", 0);
  const int have_world = communicator == nullptr ? 1 : communicator->world_size();
  const int have_rank = communicator == nullptr ? 0 : communicator->rank();
  if (world != have_world || rank != have_rank) {
    return absl::FailedPreconditionError(absl::StrCat("graph '", graph.name(), "' is rank ", rank, " of ", world,
                                                      ", but this process is rank ", have_rank, " of ", have_world));
  }
  for (const auto& node : graph.nodes()) {
    if (node->op() != "AllReduce" && node->op() != "AllGather" && node->op() != "ExpertCombine") continue;
    if (communicator == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(node->op(), " '", node->output()->name(), "' needs a communicator: run under mpirun"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSupported(const Backend& backend, const ir::Graph& graph) {
  for (const auto& node : graph.nodes()) {
    if (!backend.Supports(node->op())) {
      return absl::UnimplementedError(
          absl::StrCat("backend '", backend.name(), "' has no kernel for op '", node->op(), "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace dsrt::backends
