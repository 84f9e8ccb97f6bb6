#ifndef DSRT_BACKENDS_KV_CACHE_H_
#define DSRT_BACKENDS_KV_CACHE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "ir/dtype.h"
#include "ir/graph.h"

namespace dsrt::backends {

// What a graph keeps per token: one slot per attention op, `row_elements` values each.
struct CacheLayout {
  std::vector<int64_t> row_elements;  // indexed by the op's cache_slot attr
  ir::DType dtype = ir::DType::kF32;

  int64_t bytes_per_token() const;
};

// The slots named by the graph's attention ops; slots must be numbered 0..n-1.
absl::StatusOr<CacheLayout> CacheLayoutOf(const ir::Graph& graph);

// Rows of cached keys/values (or latents), addressed by slot, sequence and position.
// Kernels call Row() on the hot path; the runtime checks sequence and position
// bounds before a step (`Check`).
class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual const CacheLayout& layout() const = 0;
  virtual void* Row(int slot, int sequence, int64_t position) = 0;
  virtual absl::Status Check(int sequence, int64_t position) const = 0;
  // Rows 0 .. length-1 of a sequence's slot as one array, when the cache stores them
  // so; nullptr otherwise (the caller then gathers them with Row()).
  virtual const void* Contiguous(int slot, int sequence, int64_t length) { return nullptr; }
};

// Every sequence gets max_seq_len rows up front.
class ContiguousKvCache : public KvCache {
 public:
  ContiguousKvCache(CacheLayout layout, int max_sequences, int64_t max_seq_len);

  const CacheLayout& layout() const override { return layout_; }
  void* Row(int slot, int sequence, int64_t position) override;
  absl::Status Check(int sequence, int64_t position) const override;
  const void* Contiguous(int slot, int sequence, int64_t length) override {
    return length <= max_seq_len_ ? Row(slot, sequence, 0) : nullptr;
  }

 private:
  CacheLayout layout_;
  int max_sequences_;
  int64_t max_seq_len_;
  std::vector<std::vector<uint8_t>> slots_;
};

}  // namespace dsrt::backends

#endif  // DSRT_BACKENDS_KV_CACHE_H_
