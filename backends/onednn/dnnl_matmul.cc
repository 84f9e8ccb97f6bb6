#include "backends/onednn/dnnl_matmul.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "backends/onednn/cpu.h"

namespace dsrt::backends::onednn {
namespace {

using dnnl::memory;

memory::desc Plain(int64_t rows, int64_t cols, ir::DType dtype) {
  return memory::desc({rows, cols}, ToDnnl(dtype), memory::format_tag::ab);
}

// W as oneDNN's weights operand: [k, n] viewed over the row-major [n, k] bytes.
memory::desc Transposed(int64_t n, int64_t k, ir::DType dtype) {
  return memory::desc({k, n}, ToDnnl(dtype), memory::format_tag::ba);
}

}  // namespace

memory::data_type ToDnnl(ir::DType dtype) {
  switch (dtype) {
    case ir::DType::kBF16:
      return memory::data_type::bf16;
    case ir::DType::kI8:
      return memory::data_type::s8;
    case ir::DType::kI32:
      return memory::data_type::s32;
    default:
      return memory::data_type::f32;
  }
}

WeightArena::~WeightArena() {
  for (const Chunk& chunk : chunks_) munmap(chunk.data, chunk.size);
}

void* WeightArena::Allocate(size_t bytes) {
  constexpr size_t kAlign = 64, kHugePage = size_t{2} << 20, kChunk = size_t{256} << 20;
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  if (chunks_.empty() || chunks_.back().size - chunks_.back().used < bytes) {
    const size_t size = std::max(kChunk, (bytes + kHugePage - 1) / kHugePage * kHugePage);
    void* data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) return nullptr;
    madvise(data, size, MADV_HUGEPAGE);
    chunks_.push_back({static_cast<uint8_t*>(data), size, 0});
  }
  Chunk& chunk = chunks_.back();
  void* out = chunk.data + chunk.used;
  chunk.used += bytes;
  used_ += bytes;
  return out;
}

absl::StatusOr<std::unique_ptr<PackedLinear>> PackedLinear::Create(Dnnl& dnnl, WeightArena& arena,
                                                                   const std::vector<Part>& parts, ir::DType dtype,
                                                                   int64_t k, absl::string_view name) {
  if (dtype != ir::DType::kF32 && dtype != ir::DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("weight '", name, "': oneDNN linears take f32 or bf16, not ",
                                                   ir::DTypeName(dtype)));
  }
  int64_t n = 0;
  for (const Part& part : parts) n += part.rows;
  std::unique_ptr<PackedLinear> linear(new PackedLinear(dnnl, dtype, n, k));
  const size_t row_bytes = ir::DTypeBytes(dtype, k);
  try {
    memory::desc any({k, n}, ToDnnl(dtype), memory::format_tag::any);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(Plain(1, k, dtype), any, Plain(1, n, ir::DType::kF32)),
                                    dnnl.engine);
    std::vector<uint8_t> stacked;
    const void* plain_data = parts[0].data;
    if (parts.size() > 1) {
      stacked.resize(row_bytes * n);
      size_t offset = 0;
      for (const Part& part : parts) {
        std::memcpy(stacked.data() + offset, part.data, row_bytes * part.rows);
        offset += row_bytes * part.rows;
      }
      plain_data = stacked.data();
    }
    memory plain(Transposed(n, k, dtype), dnnl.engine, const_cast<void*>(plain_data));
    void* packed = arena.Allocate(pd.weights_desc().get_size());
    if (packed == nullptr) return absl::ResourceExhaustedError(absl::StrCat("weight '", name, "': out of memory"));
    linear->weights_ = memory(pd.weights_desc(), dnnl.engine, packed);
    dnnl::reorder(plain, linear->weights_).execute(dnnl.stream, plain, linear->weights_);
    dnnl.stream.wait();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("weight '", name, "': oneDNN could not pack it: ", e.what()));
  }
  return linear;
}

dnnl::matmul& PackedLinear::PrimitiveFor(int64_t m) {
  auto it = by_m_.find(m);
  if (it != by_m_.end()) return it->second;
  dnnl::matmul::primitive_desc pd(
      dnnl::matmul::desc(Plain(m, k_, dtype_), weights_.get_desc(), Plain(m, n_, ir::DType::kF32)), dnnl_.engine);
  return by_m_.emplace(m, dnnl::matmul(pd)).first->second;
}

void PackedLinear::Run(const float* x, int64_t m, float* y) {
  if (dtype_ == ir::DType::kF32) return RunConverted(x, m, y);
  if (static_cast<int64_t>(x_bf16_.size()) < m * k_) x_bf16_.resize(m * k_);
  F32ToBf16(x, x_bf16_.data(), m * k_);
  RunConverted(x_bf16_.data(), m, y);
}

void PackedLinear::RunConverted(const void* x, int64_t m, float* y) {
  if (m == 0) return;
  memory src(Plain(m, k_, dtype_), dnnl_.engine, const_cast<void*>(x));
  memory dst(Plain(m, n_, ir::DType::kF32), dnnl_.engine, y);
  PrimitiveFor(m).execute(dnnl_.stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst}});
  dnnl_.stream.wait();
}

memory::desc MatrixView::desc() const {
  return memory::desc(memory::dims(dims.begin(), dims.end()), ToDnnl(dtype),
                      memory::dims(strides.begin(), strides.end()));
}

absl::StatusOr<memory> PackStrided(Dnnl& dnnl, WeightArena& arena, const MatrixView& view, const void* data,
                                   ir::DType packed_dtype, int64_t src_rows, ir::DType dst_dtype) {
  try {
    const memory::dims dims(view.dims.begin(), view.dims.end());
    memory::dims src_dims = dims, dst_dims = dims;
    src_dims[src_dims.size() - 1] = view.dims[view.dims.size() - 2];
    src_dims[src_dims.size() - 2] = src_rows;
    dst_dims[dst_dims.size() - 2] = src_rows;
    const memory::desc any(dims, ToDnnl(packed_dtype), memory::format_tag::any);
    const auto plain_tag = dims.size() == 3 ? memory::format_tag::abc : memory::format_tag::ab;
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(memory::desc(src_dims, ToDnnl(packed_dtype), plain_tag), any,
                                                       memory::desc(dst_dims, ToDnnl(dst_dtype), plain_tag)),
                                    dnnl.engine);
    void* packed = arena.Allocate(pd.weights_desc().get_size());
    if (packed == nullptr) return absl::ResourceExhaustedError("out of memory packing a weight");
    memory source(view.desc(), dnnl.engine, const_cast<void*>(data));
    memory out(pd.weights_desc(), dnnl.engine, packed);
    dnnl::reorder(source, out).execute(dnnl.stream, source, out);
    dnnl.stream.wait();
    return out;
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN could not pack a strided weight: ", e.what()));
  }
}

dnnl::matmul& StridedMatmuls::Primitive(const MatrixView& src, const memory::desc& weights, const MatrixView& dst,
                                        std::vector<int64_t> key) {
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  // Shapes follow prompt lengths; a server sees many, so the cache starts over when full.
  if (cache_.size() >= 512) cache_.clear();
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src.desc(), weights, dst.desc()), dnnl_.engine);
  return cache_.emplace(std::move(key), dnnl::matmul(pd)).first->second;
}

namespace {

void AppendKey(const MatrixView& view, std::vector<int64_t>& key) {
  key.insert(key.end(), view.dims.begin(), view.dims.end());
  key.insert(key.end(), view.strides.begin(), view.strides.end());
  key.push_back(static_cast<int64_t>(view.dtype));
}

}  // namespace

void StridedMatmuls::Run(const MatrixView& src, const void* src_data, const MatrixView& weights,
                         const void* weights_data, const MatrixView& dst, void* dst_data) {
  std::vector<int64_t> key;
  for (const MatrixView* view : {&src, &weights, &dst}) AppendKey(*view, key);
  dnnl::matmul& matmul = Primitive(src, weights.desc(), dst, std::move(key));
  memory s(src.desc(), dnnl_.engine, const_cast<void*>(src_data));
  memory w(weights.desc(), dnnl_.engine, const_cast<void*>(weights_data));
  memory d(dst.desc(), dnnl_.engine, dst_data);
  matmul.execute(dnnl_.stream, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, d}});
  dnnl_.stream.wait();
}

void StridedMatmuls::Run(const MatrixView& src, const void* src_data, const memory& weights, const MatrixView& dst,
                         void* dst_data) {
  std::vector<int64_t> key = {-1, reinterpret_cast<intptr_t>(weights.get_data_handle())};
  AppendKey(src, key);
  AppendKey(dst, key);
  dnnl::matmul& matmul = Primitive(src, weights.get_desc(), dst, std::move(key));
  memory s(src.desc(), dnnl_.engine, const_cast<void*>(src_data));
  memory d(dst.desc(), dnnl_.engine, dst_data);
  matmul.execute(dnnl_.stream, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, d}});
  dnnl_.stream.wait();
}

}  // namespace dsrt::backends::onednn
