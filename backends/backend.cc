#include "backends/backend.h"

#include "absl/strings/str_cat.h"
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

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(absl::string_view name) {
  if (name == "reference") return std::unique_ptr<Backend>(new reference::ReferenceBackend());
  return absl::InvalidArgumentError(absl::StrCat("unknown backend '", name, "' (have: reference)"));
}

std::vector<std::string> BackendNames() { return {"reference"}; }

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
