#ifndef DSRT_BACKENDS_ONEDNN_DNNL_MATMUL_H_
#define DSRT_BACKENDS_ONEDNN_DNNL_MATMUL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include <dnnl.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ir/dtype.h"

namespace dsrt::backends::onednn {

// The CPU engine and stream every primitive of an executable runs on.
struct Dnnl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

dnnl::memory::data_type ToDnnl(ir::DType dtype);

// Memory for packed weights: large chunks asked to be backed by transparent huge
// pages (fewer page faults while packing, fewer TLB misses while streaming the
// weights every decode step), handed out 64-byte aligned, freed all at once.
class WeightArena {
 public:
  WeightArena() = default;
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;
  ~WeightArena();
  void* Allocate(size_t bytes);
  size_t bytes() const { return used_; }

 private:
  struct Chunk {
    uint8_t* data;
    size_t size, used;
  };
  std::vector<Chunk> chunks_;
  size_t used_ = 0;
};

// y[m, n] = x[m, k] · Wᵀ for a float weight W[n, k] (the Hugging Face layout),
// reordered once into the blocked layout oneDNN prefers for this CPU. One primitive
// per token count m, made on first use (the packed layout does not depend on m).
class PackedLinear {
 public:
  // `rows` are weights of equal width k and dtype, stacked in order into one W
  // (gate and up projections become one GEMM this way).
  struct Part {
    const void* data;
    int64_t rows;
  };
  static absl::StatusOr<std::unique_ptr<PackedLinear>> Create(Dnnl& dnnl, WeightArena& arena,
                                                              const std::vector<Part>& parts, ir::DType dtype,
                                                              int64_t k, absl::string_view name);

  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  ir::DType dtype() const { return dtype_; }

  // x f32 [m, k] (rounded to bf16 first when W is bf16) into y f32 [m, n].
  void Run(const float* x, int64_t m, float* y);
  // x already in W's dtype.
  void RunConverted(const void* x, int64_t m, float* y);

 private:
  PackedLinear(Dnnl& dnnl, ir::DType dtype, int64_t n, int64_t k) : dnnl_(dnnl), dtype_(dtype), n_(n), k_(k) {}
  dnnl::matmul& PrimitiveFor(int64_t m);

  Dnnl& dnnl_;
  ir::DType dtype_;
  int64_t n_, k_;
  dnnl::memory weights_;
  absl::flat_hash_map<int64_t, dnnl::matmul> by_m_;
  std::vector<uint16_t> x_bf16_;
};

// A strided matrix (or batch of them, up to 3 dims) that oneDNN reads or writes in place.
struct MatrixView {
  std::vector<int64_t> dims;
  std::vector<int64_t> strides;
  ir::DType dtype;
  dnnl::memory::desc desc() const;
};

// A (batched) weights operand reordered once from a strided view into oneDNN's
// blocked layout in `packed_dtype` (converting if the view's differs), e.g. every
// head's slice of kv_b_proj, for matmuls with `src_rows` rows and a `dst_dtype` result.
absl::StatusOr<dnnl::memory> PackStrided(Dnnl& dnnl, WeightArena& arena, const MatrixView& view, const void* data,
                                         ir::DType packed_dtype, int64_t src_rows, ir::DType dst_dtype);

// dst = src · weights over MatrixViews (batched: weights of batch 1 broadcast),
// primitives cached by shape and strides.
class StridedMatmuls {
 public:
  explicit StridedMatmuls(Dnnl& dnnl) : dnnl_(dnnl) {}
  void Run(const MatrixView& src, const void* src_data, const MatrixView& weights, const void* weights_data,
           const MatrixView& dst, void* dst_data);
  // With weights packed by PackStrided.
  void Run(const MatrixView& src, const void* src_data, const dnnl::memory& weights, const MatrixView& dst,
           void* dst_data);

 private:
  dnnl::matmul& Primitive(const MatrixView& src, const dnnl::memory::desc& weights, const MatrixView& dst,
                          std::vector<int64_t> key);

  Dnnl& dnnl_;
  absl::flat_hash_map<std::vector<int64_t>, dnnl::matmul> cache_;
};

}  // namespace dsrt::backends::onednn

#endif  // DSRT_BACKENDS_ONEDNN_DNNL_MATMUL_H_
