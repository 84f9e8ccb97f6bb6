#include "backends/kv_cache.h"

#include "absl/strings/str_cat.h"
#include "ir/op_registry.h"
#include "ir/status_macros.h"

namespace dsrt::backends {

int64_t CacheLayout::bytes_per_token() const {
  int64_t elements = 0;
  for (int64_t e : row_elements) elements += e;
  return ir::DTypeBytes(dtype, elements);
}

absl::StatusOr<CacheLayout> CacheLayoutOf(const ir::Graph& graph) {
  CacheLayout layout;
  bool first = true;
  for (const auto& node : graph.nodes()) {
    const ir::OpSchema* schema = ir::OpRegistry::Global().Find(node->op());
    if (schema == nullptr || !schema->cache_row) continue;
    std::vector<ir::TensorType> inputs;
    for (const ir::Value* v : node->inputs()) inputs.push_back(v->type());
    DSRT_ASSIGN_OR_RETURN(int64_t row, schema->cache_row(node->attrs(), inputs));
    DSRT_ASSIGN_OR_RETURN(int64_t slot, node->attrs().GetInt("cache_slot"));
    if (slot < 0 || slot > 4096) return absl::InvalidArgumentError(absl::StrCat("cache_slot ", slot, " out of range"));
    if (static_cast<int64_t>(layout.row_elements.size()) <= slot) layout.row_elements.resize(slot + 1, 0);
    if (layout.row_elements[slot] != 0) {
      return absl::InvalidArgumentError(absl::StrCat("cache_slot ", slot, " is used by two attention ops"));
    }
    layout.row_elements[slot] = row;
    ir::DType dtype = node->input(0)->type().dtype;
    if (node->attrs().Has("cache_dtype")) {
      DSRT_ASSIGN_OR_RETURN(std::string name, node->attrs().GetString("cache_dtype"));
      DSRT_ASSIGN_OR_RETURN(dtype, ir::ParseDType(name));
    }
    if (!first && dtype != layout.dtype) return absl::InvalidArgumentError("attention ops disagree on cache dtype");
    layout.dtype = dtype;
    first = false;
  }
  for (size_t i = 0; i < layout.row_elements.size(); ++i) {
    if (layout.row_elements[i] == 0) return absl::InvalidArgumentError(absl::StrCat("cache_slot ", i, " is unused"));
  }
  return layout;
}

ContiguousKvCache::ContiguousKvCache(CacheLayout layout, int max_sequences, int64_t max_seq_len)
    : layout_(std::move(layout)), max_sequences_(max_sequences), max_seq_len_(max_seq_len) {
  for (int64_t row : layout_.row_elements) {
    slots_.emplace_back(ir::DTypeBytes(layout_.dtype, row) * max_sequences_ * max_seq_len_);
  }
}

void* ContiguousKvCache::Row(int slot, int sequence, int64_t position) {
  const int64_t row_bytes = ir::DTypeBytes(layout_.dtype, layout_.row_elements[slot]);
  return slots_[slot].data() + (static_cast<int64_t>(sequence) * max_seq_len_ + position) * row_bytes;
}

absl::Status ContiguousKvCache::Check(int sequence, int64_t position) const {
  if (sequence < 0 || sequence >= max_sequences_) {
    return absl::OutOfRangeError(absl::StrCat("sequence slot ", sequence, " outside [0, ", max_sequences_, ")"));
  }
  if (position < 0 || position >= max_seq_len_) {
    return absl::OutOfRangeError(
        absl::StrCat("position ", position, " is beyond the engine's max sequence length ", max_seq_len_));
  }
  return absl::OkStatus();
}

}  // namespace dsrt::backends
