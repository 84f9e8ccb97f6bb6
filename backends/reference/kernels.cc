#include "backends/reference/kernels.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "backends/expert_combine.h"
#include "backends/routing.h"
#include "ir/dtype.h"
#include "ir/status_macros.h"

namespace dsrt::backends::reference {
namespace {

using Inputs = std::vector<const Tensor*>;
using Outputs = std::vector<Tensor*>;

// The product of all dims but the last: the number of rows a row-wise op sees.
int64_t Rows(const Tensor& t) { return t.dims.empty() ? 1 : t.size() / t.dims.back(); }

absl::Status Embedding(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  const Tensor& table = *in[0];
  const Tensor& ids = *in[1];
  const int64_t vocab = table.dims[0], hidden = table.dims[1];
  std::vector<int64_t> dims = ids.dims;
  dims.push_back(hidden);
  out[0]->Allocate(node.output()->type().dtype, dims);
  for (int64_t t = 0; t < ids.size(); ++t) {
    const int32_t id = ids.i[t];
    if (id < 0 || id >= vocab) {
      return absl::OutOfRangeError(absl::StrCat("token id ", id, " is outside the vocabulary [0, ", vocab, ")"));
    }
    std::copy_n(table.f.data() + id * hidden, hidden, out[0]->f.data() + t * hidden);
  }
  return absl::OkStatus();
}

// x / sqrt(mean(x^2) + eps) * w over the last dim, into `out` (allocated like x).
void NormalizeRows(const Tensor& x, const Tensor& w, double eps, Tensor& out) {
  const int64_t n = x.dims.back();
  for (int64_t r = 0; r < Rows(x); ++r) {
    const float* xr = x.f.data() + r * n;
    double sum_sq = 0;
    for (int64_t j = 0; j < n; ++j) sum_sq += static_cast<double>(xr[j]) * xr[j];
    const double inv_rms = 1.0 / std::sqrt(sum_sq / n + eps);
    for (int64_t j = 0; j < n; ++j) out.f[r * n + j] = static_cast<float>(xr[j] * inv_rms * w.f[j]);
  }
}

absl::Status RmsNorm(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  DSRT_ASSIGN_OR_RETURN(double eps, node.attrs().GetDouble("eps"));
  out[0]->Allocate(node.output()->type().dtype, in[0]->dims);
  NormalizeRows(*in[0], *in[1], eps, *out[0]);
  return absl::OkStatus();
}

// Add then RMSNorm: the norm reads the sum rounded to its dtype, as it would read the Add's output.
absl::Status AddRmsNorm(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  DSRT_ASSIGN_OR_RETURN(double eps, node.attrs().GetDouble("eps"));
  const Tensor &x = *in[0], &residual = *in[1];
  Tensor& sum = *out[0];
  sum.Allocate(node.output(0)->type().dtype, x.dims);
  for (int64_t e = 0; e < sum.size(); ++e) sum.f[e] = x.f[e] + residual.f[e];
  sum.RoundToDType();
  out[1]->Allocate(node.output(1)->type().dtype, x.dims);
  NormalizeRows(sum, *in[2], eps, *out[1]);
  return absl::OkStatus();
}

absl::Status Linear(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  const Tensor& x = *in[0];
  const Tensor& w = *in[1];
  const int64_t n_out = w.dims[0], n_in = w.dims[1];
  std::vector<int64_t> dims = x.dims;
  dims.back() = n_out;
  out[0]->Allocate(node.output()->type().dtype, dims);
  for (int64_t r = 0; r < Rows(x); ++r) {
    const float* xr = x.f.data() + r * n_in;
    for (int64_t o = 0; o < n_out; ++o) {
      const float* wr = w.f.data() + o * n_in;
      double acc = 0;
      for (int64_t j = 0; j < n_in; ++j) acc += static_cast<double>(xr[j]) * wr[j];
      out[0]->f[r * n_out + o] = static_cast<float>(acc);
    }
  }
  return absl::OkStatus();
}

// w[o, j] = values[o, j] * scales[o, j / group_size], in f32: the weight a QLinear or
// QFusedMoE computes with.
Tensor Dequantize(const Tensor& values, const Tensor& scales, int64_t group_size) {
  const int64_t rows = values.dims[0], cols = values.dims[1], groups = scales.dims[1];
  Tensor w;
  w.Allocate(ir::DType::kF32, values.dims);
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t j = 0; j < cols; ++j) {
      w.f[o * cols + j] = values.f[o * cols + j] * scales.f[o * groups + j / group_size];
    }
  }
  return w;
}

// Linear over the dequantized weight.
absl::Status QLinear(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext& ctx) {
  DSRT_ASSIGN_OR_RETURN(int64_t group_size, node.attrs().GetInt("group_size"));
  const Tensor w = Dequantize(*in[1], *in[2], group_size);
  return Linear(node, {in[0], &w}, out, ctx);
}

// Strides of `dims` right-aligned to a rank-`rank` broadcast shape, 0 where broadcast.
std::vector<int64_t> BroadcastStrides(const std::vector<int64_t>& dims, const std::vector<int64_t>& out_dims) {
  const size_t rank = out_dims.size();
  std::vector<int64_t> strides(rank, 0);
  int64_t stride = 1;
  for (size_t k = 0; k < dims.size(); ++k) {
    const size_t axis = dims.size() - 1 - k;
    const size_t out_axis = rank - 1 - k;
    strides[out_axis] = dims[axis] == 1 ? 0 : stride;
    stride *= dims[axis];
  }
  return strides;
}

// Advances a multi-index over `dims` in row-major order, like an odometer.
void NextIndex(std::vector<int64_t>& index, const std::vector<int64_t>& dims) {
  for (int64_t k = static_cast<int64_t>(dims.size()) - 1; k >= 0; --k) {
    if (++index[k] < dims[k]) return;
    index[k] = 0;
  }
}

int64_t Offset(const std::vector<int64_t>& index, const std::vector<int64_t>& strides) {
  int64_t offset = 0;
  for (size_t k = 0; k < index.size(); ++k) offset += index[k] * strides[k];
  return offset;
}

template <typename Fn>
absl::Status Binary(const ir::Node& node, const Inputs& in, const Outputs& out, Fn fn) {
  const Tensor& a = *in[0];
  const Tensor& b = *in[1];
  const size_t rank = std::max(a.dims.size(), b.dims.size());
  std::vector<int64_t> dims(rank);
  for (size_t k = 0; k < rank; ++k) {
    const int64_t da = k < a.dims.size() ? a.dims[a.dims.size() - 1 - k] : 1;
    const int64_t db = k < b.dims.size() ? b.dims[b.dims.size() - 1 - k] : 1;
    if (da != db && da != 1 && db != 1) {
      return absl::InvalidArgumentError(absl::StrCat(node.op(), ": shapes do not broadcast at run time"));
    }
    dims[rank - 1 - k] = std::max(da, db);
  }
  out[0]->Allocate(node.output()->type().dtype, dims);
  const std::vector<int64_t> sa = BroadcastStrides(a.dims, dims);
  const std::vector<int64_t> sb = BroadcastStrides(b.dims, dims);
  std::vector<int64_t> index(rank, 0);
  for (int64_t e = 0; e < out[0]->size(); ++e, NextIndex(index, dims)) {
    out[0]->f[e] = fn(a.f[Offset(index, sa)], b.f[Offset(index, sb)]);
  }
  return absl::OkStatus();
}

float SiluOf(float value) {
  const double x = value;
  return static_cast<float>(x / (1.0 + std::exp(-x)));
}

absl::Status Silu(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  out[0]->Allocate(node.output()->type().dtype, in[0]->dims);
  for (int64_t e = 0; e < in[0]->size(); ++e) out[0]->f[e] = SiluOf(in[0]->f[e]);
  return absl::OkStatus();
}

// Silu(gate) * up, rounding the silu to the dtype first as the Silu node's output would be.
absl::Status SwiGlu(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  const Tensor &gate = *in[0], &up = *in[1];
  const bool bf16 = node.output()->type().dtype == ir::DType::kBF16;
  out[0]->Allocate(node.output()->type().dtype, gate.dims);
  for (int64_t e = 0; e < gate.size(); ++e) {
    const float silu = bf16 ? ir::RoundToBF16(SiluOf(gate.f[e])) : SiluOf(gate.f[e]);
    out[0]->f[e] = silu * up.f[e];
  }
  return absl::OkStatus();
}

absl::Status Cast(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  out[0]->Allocate(node.output()->type().dtype, in[0]->dims);
  if (in[0]->is_int() || out[0]->is_int()) return absl::UnimplementedError("Cast between int and float");
  out[0]->f = in[0]->f;
  return absl::OkStatus();
}

absl::Status Reshape(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  DSRT_ASSIGN_OR_RETURN(std::vector<int64_t> shape, node.attrs().GetInts("shape"));
  const Tensor& x = *in[0];
  int64_t known = 1;
  int infer_at = -1;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] == 0) shape[k] = x.dims[k];
    if (shape[k] == -1) infer_at = static_cast<int>(k);
    else known *= shape[k];
  }
  if (infer_at >= 0) shape[infer_at] = known == 0 ? 0 : x.size() / known;
  *out[0] = x;
  out[0]->dims = shape;
  return absl::OkStatus();
}

absl::Status Expand(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  DSRT_ASSIGN_OR_RETURN(std::vector<int64_t> shape, node.attrs().GetInts("shape"));
  const Tensor& x = *in[0];
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] == 0) shape[k] = x.dims[k];
  }
  out[0]->Allocate(node.output()->type().dtype, shape);
  const std::vector<int64_t> strides = BroadcastStrides(x.dims, shape);
  std::vector<int64_t> index(shape.size(), 0);
  for (int64_t e = 0; e < out[0]->size(); ++e, NextIndex(index, shape)) out[0]->f[e] = x.f[Offset(index, strides)];
  return absl::OkStatus();
}

// Views x as [outer, axis, inner] around `axis`.
void SplitAround(const std::vector<int64_t>& dims, int64_t axis, int64_t* outer, int64_t* inner) {
  *outer = std::accumulate(dims.begin(), dims.begin() + axis, int64_t{1}, std::multiplies<>());
  *inner = std::accumulate(dims.begin() + axis + 1, dims.end(), int64_t{1}, std::multiplies<>());
}

absl::Status Slice(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  const Tensor& x = *in[0];
  int64_t axis = node.attrs().IntOr("axis", 0);
  if (axis < 0) axis += static_cast<int64_t>(x.dims.size());
  const int64_t start = node.attrs().IntOr("start", 0), end = node.attrs().IntOr("end", 0);
  std::vector<int64_t> dims = x.dims;
  dims[axis] = end - start;
  out[0]->Allocate(x.dtype, dims);
  int64_t outer, inner;
  SplitAround(x.dims, axis, &outer, &inner);
  const int64_t width = (end - start) * inner;
  for (int64_t o = 0; o < outer; ++o) {
    const int64_t src = (o * x.dims[axis] + start) * inner;
    if (x.is_int()) std::copy_n(x.i.data() + src, width, out[0]->i.data() + o * width);
    else std::copy_n(x.f.data() + src, width, out[0]->f.data() + o * width);
  }
  return absl::OkStatus();
}

absl::Status Concat(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  int64_t axis = node.attrs().IntOr("axis", 0);
  if (axis < 0) axis += static_cast<int64_t>(in[0]->dims.size());
  std::vector<int64_t> dims = in[0]->dims;
  dims[axis] = 0;
  for (const Tensor* t : in) dims[axis] += t->dims[axis];
  out[0]->Allocate(node.output()->type().dtype, dims);
  int64_t outer, inner;
  SplitAround(dims, axis, &outer, &inner);
  int64_t offset = 0;
  for (const Tensor* t : in) {
    const int64_t width = t->dims[axis] * inner;
    for (int64_t o = 0; o < outer; ++o) {
      std::copy_n(t->f.data() + o * width, width, out[0]->f.data() + o * dims[axis] * inner + offset);
    }
    offset += width;
  }
  return absl::OkStatus();
}

// Interleaved rotary embedding of x[T, ..., D] into `out` (allocated like x): (x[2i], x[2i+1])
// rotates by position * inv_freq[i]; cos and sin are multiplied by `scale`.
void RotateInterleaved(const Tensor& x, const Tensor& positions, const std::vector<double>& inv_freq, double scale,
                       Tensor& out) {
  const int64_t dim = x.dims.back();
  const int64_t tokens = x.dims[0];
  const int64_t rows_per_token = tokens == 0 ? 0 : x.size() / (tokens * dim);
  for (int64_t t = 0; t < tokens; ++t) {
    // Frequencies and angles in float32, as Hugging Face and DeepSeek's reference compute them.
    const float position = static_cast<float>(positions.i[t]);
    for (int64_t r = 0; r < rows_per_token; ++r) {
      const int64_t base = (t * rows_per_token + r) * dim;
      for (int64_t i = 0; i < dim / 2; ++i) {
        const float angle = position * static_cast<float>(inv_freq[i]);
        const double c = std::cos(angle) * scale, s = std::sin(angle) * scale;
        const double x0 = x.f[base + 2 * i], x1 = x.f[base + 2 * i + 1];
        out.f[base + 2 * i] = static_cast<float>(x0 * c - x1 * s);
        out.f[base + 2 * i + 1] = static_cast<float>(x0 * s + x1 * c);
      }
    }
  }
}

absl::Status Rope(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  DSRT_ASSIGN_OR_RETURN(std::vector<double> inv_freq, node.attrs().GetDoubles("inv_freq"));
  out[0]->Allocate(node.output()->type().dtype, in[0]->dims);
  RotateInterleaved(*in[0], *in[1], inv_freq, node.attrs().DoubleOr("scale", 1.0), *out[0]);
  return absl::OkStatus();
}

void StoreRow(void* dst, ir::DType dtype, const float* src, int64_t n) {
  if (dtype == ir::DType::kBF16) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t j = 0; j < n; ++j) d[j] = ir::F32ToBF16(src[j]);
    return;
  }
  std::memcpy(dst, src, n * sizeof(float));
}

void LoadRow(const void* src, ir::DType dtype, int64_t n, float* dst) {
  if (dtype == ir::DType::kBF16) {
    const auto* s = static_cast<const uint16_t*>(src);
    for (int64_t j = 0; j < n; ++j) dst[j] = ir::BF16ToF32(s[j]);
    return;
  }
  std::memcpy(dst, src, n * sizeof(float));
}

// Cache row of a token: [k (heads × dk) | v (heads × dv)].
absl::Status Attention(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext& ctx) {
  const Tensor &q = *in[0], &k = *in[1], &v = *in[2], &positions = *in[3];
  DSRT_ASSIGN_OR_RETURN(int64_t slot, node.attrs().GetInt("cache_slot"));
  DSRT_ASSIGN_OR_RETURN(double scale, node.attrs().GetDouble("scale"));
  const int64_t tokens = q.dims[0], heads = q.dims[1], dk = q.dims[2], dv = v.dims[2];
  const int64_t k_width = heads * dk, v_width = heads * dv;
  const ir::DType cache_dtype = ctx.cache->layout().dtype;
  for (int64_t t = 0; t < tokens; ++t) {
    void* row = ctx.cache->Row(static_cast<int>(slot), ctx.step->sequence_slots[t], positions.i[t]);
    StoreRow(row, cache_dtype, k.f.data() + t * k_width, k_width);
    StoreRow(static_cast<uint8_t*>(row) + ir::DTypeBytes(cache_dtype, k_width), cache_dtype,
             v.f.data() + t * v_width, v_width);
  }
  out[0]->Allocate(node.output()->type().dtype, {tokens, heads, dv});
  std::vector<float> cached(k_width + v_width);
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t length = positions.i[t] + 1;
    std::vector<std::vector<float>> keys(length), values(length);
    for (int64_t j = 0; j < length; ++j) {
      const void* row = ctx.cache->Row(static_cast<int>(slot), ctx.step->sequence_slots[t], j);
      LoadRow(row, cache_dtype, k_width + v_width, cached.data());
      keys[j].assign(cached.begin(), cached.begin() + k_width);
      values[j].assign(cached.begin() + k_width, cached.end());
    }
    for (int64_t h = 0; h < heads; ++h) {
      const float* qh = q.f.data() + (t * heads + h) * dk;
      std::vector<double> scores(length);
      double max_score = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < length; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < dk; ++d) dot += static_cast<double>(qh[d]) * keys[j][h * dk + d];
        scores[j] = dot * scale;
        max_score = std::max(max_score, scores[j]);
      }
      double total = 0;
      for (double& s : scores) total += (s = std::exp(s - max_score));
      float* oh = out[0]->f.data() + (t * heads + h) * dv;
      for (int64_t d = 0; d < dv; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < length; ++j) acc += scores[j] * values[j][h * dv + d];
        oh[d] = static_cast<float>(acc / total);
      }
    }
  }
  return absl::OkStatus();
}

// Absorbed MLA. Cache row of a token: [c_kv (rank) | k_pe (rope)], shared by every head.
// W_UK[h] and W_UV[h] are read from kv_b_weight in place: rows h*(nope+v) .. +nope, then the next v.
// With attr 'rope_inv_freq', MLAAttention's q_pe and k_pe come un-rotated: rotated here into
// `q_rot` and `k_rot` exactly as a Rope node would (rounded to their dtype), and pointed at.
absl::Status ApplyFusedRope(const ir::Node& node, const Tensor& positions, const Tensor** q_pe, const Tensor** k_pe,
                            Tensor& q_rot, Tensor& k_rot) {
  if (!node.attrs().Has("rope_inv_freq")) return absl::OkStatus();
  DSRT_ASSIGN_OR_RETURN(std::vector<double> inv_freq, node.attrs().GetDoubles("rope_inv_freq"));
  const double scale = node.attrs().DoubleOr("rope_scale", 1.0);
  for (auto [x, rotated, input] : {std::tuple{q_pe, &q_rot, 1}, std::tuple{k_pe, &k_rot, 3}}) {
    rotated->Allocate(node.input(input)->type().dtype, (*x)->dims);
    RotateInterleaved(**x, positions, inv_freq, scale, *rotated);
    rotated->RoundToDType();
    *x = rotated;
  }
  return absl::OkStatus();
}

absl::Status MlaAttention(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext& ctx) {
  const Tensor *q_pe_in = in[1], *k_pe_in = in[3];
  Tensor q_rot, k_rot;
  DSRT_RETURN_IF_ERROR(ApplyFusedRope(node, *in[5], &q_pe_in, &k_pe_in, q_rot, k_rot));
  const Tensor &q_nope = *in[0], &q_pe = *q_pe_in, &c_kv = *in[2], &k_pe = *k_pe_in, &w = *in[4], &positions = *in[5];
  DSRT_ASSIGN_OR_RETURN(int64_t slot, node.attrs().GetInt("cache_slot"));
  DSRT_ASSIGN_OR_RETURN(double scale, node.attrs().GetDouble("scale"));
  DSRT_ASSIGN_OR_RETURN(int64_t heads, node.attrs().GetInt("heads"));
  DSRT_ASSIGN_OR_RETURN(int64_t nope, node.attrs().GetInt("qk_nope_head_dim"));
  DSRT_ASSIGN_OR_RETURN(int64_t v_dim, node.attrs().GetInt("v_head_dim"));
  const int64_t tokens = q_nope.dims[0], rank = c_kv.dims[1], rope = q_pe.dims[2];
  const int64_t head_rows = nope + v_dim;
  const ir::DType cache_dtype = ctx.cache->layout().dtype;
  for (int64_t t = 0; t < tokens; ++t) {
    void* row = ctx.cache->Row(static_cast<int>(slot), ctx.step->sequence_slots[t], positions.i[t]);
    StoreRow(row, cache_dtype, c_kv.f.data() + t * rank, rank);
    StoreRow(static_cast<uint8_t*>(row) + ir::DTypeBytes(cache_dtype, rank), cache_dtype, k_pe.f.data() + t * rope,
             rope);
  }
  out[0]->Allocate(node.output()->type().dtype, {tokens, heads, v_dim});
  std::vector<float> cached(rank + rope);
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t length = positions.i[t] + 1;
    std::vector<std::vector<float>> latents(length), rope_keys(length);
    for (int64_t j = 0; j < length; ++j) {
      const void* row = ctx.cache->Row(static_cast<int>(slot), ctx.step->sequence_slots[t], j);
      LoadRow(row, cache_dtype, rank + rope, cached.data());
      latents[j].assign(cached.begin(), cached.begin() + rank);
      rope_keys[j].assign(cached.begin() + rank, cached.end());
    }
    for (int64_t h = 0; h < heads; ++h) {
      const float* qn = q_nope.f.data() + (t * heads + h) * nope;
      const float* qp = q_pe.f.data() + (t * heads + h) * rope;
      const float* w_uk = w.f.data() + h * head_rows * rank;
      const float* w_uv = w_uk + nope * rank;
      std::vector<double> q_latent(rank, 0.0);  // W_UK[h]^T q_nope[h]
      for (int64_t d = 0; d < nope; ++d) {
        for (int64_t r = 0; r < rank; ++r) q_latent[r] += static_cast<double>(qn[d]) * w_uk[d * rank + r];
      }
      std::vector<double> scores(length);
      double max_score = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < length; ++j) {
        double dot = 0;
        for (int64_t r = 0; r < rank; ++r) dot += q_latent[r] * latents[j][r];
        for (int64_t d = 0; d < rope; ++d) dot += static_cast<double>(qp[d]) * rope_keys[j][d];
        scores[j] = dot * scale;
        max_score = std::max(max_score, scores[j]);
      }
      double total = 0;
      for (double& s : scores) total += (s = std::exp(s - max_score));
      std::vector<double> o_latent(rank, 0.0);  // sum_j p_j c_kv_j
      for (int64_t j = 0; j < length; ++j) {
        for (int64_t r = 0; r < rank; ++r) o_latent[r] += scores[j] / total * latents[j][r];
      }
      float* oh = out[0]->f.data() + (t * heads + h) * v_dim;
      for (int64_t e = 0; e < v_dim; ++e) {
        double acc = 0;
        for (int64_t r = 0; r < rank; ++r) acc += o_latent[r] * w_uv[e * rank + r];
        oh[e] = static_cast<float>(acc);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Router(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  DSRT_ASSIGN_OR_RETURN(RouterAttrs a, ReadRouterAttrs(node));
  const Tensor& x = *in[0];
  const Tensor& w = *in[1];
  const float* bias = in.size() > 2 ? in[2]->f.data() : nullptr;
  const int64_t tokens = x.dims[0], hidden = x.dims[1], experts = w.dims[0];
  out[0]->Allocate(ir::DType::kI32, {tokens, a.top_k});
  out[1]->Allocate(ir::DType::kF32, {tokens, a.top_k});
  std::vector<double> logits(experts);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = 0; e < experts; ++e) {
      double acc = 0;
      for (int64_t j = 0; j < hidden; ++j) acc += static_cast<double>(x.f[t * hidden + j]) * w.f[e * hidden + j];
      logits[e] = acc;
    }
    Route(a, logits, bias, out[0]->i.data() + t * a.top_k, out[1]->f.data() + t * a.top_k);
  }
  return absl::OkStatus();
}

absl::Status ExpertWeight(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  DSRT_ASSIGN_OR_RETURN(int64_t expert, node.attrs().GetInt("expert"));
  const Tensor &ids = *in[0], &weights = *in[1];
  const int64_t tokens = ids.dims[0], top_k = ids.dims[1];
  out[0]->Allocate(ir::DType::kF32, {tokens, 1});
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t k = 0; k < top_k; ++k) {
      if (ids.i[t * top_k + k] == expert) out[0]->f[t] += weights.f[t * top_k + k];
    }
  }
  return absl::OkStatus();
}

// Routed experts over just their tokens. Rounds to f32 where the per-expert graph does
// (after each Linear, Silu, Mul and Add) and sums in expert order, so it reproduces
// that graph exactly while doing top_k / num_experts of its work.
// `expert_weights(e)` gives expert e's gate, up and down weights, asked only for experts
// that some token is routed to.
using ExpertWeightsFn = std::function<std::array<const Tensor*, 3>(int64_t expert)>;

absl::Status RunExperts(const ir::Node& node, const Inputs& in, const Outputs& out, const ExpertWeightsFn& expert_weights) {
  DSRT_ASSIGN_OR_RETURN(int64_t experts, node.attrs().GetInt("num_experts"));
  const int64_t first = node.attrs().IntOr("first_expert", 0);
  const int64_t routed_experts = node.attrs().IntOr("routed_experts", experts);
  const Tensor &x = *in[0], &ids = *in[1], &weights = *in[2];
  const int64_t tokens = x.dims[0], hidden = x.dims[1], top_k = ids.dims[1];
  const int64_t inter = in[3]->dims[0];
  // Group the tokens by expert: (token, routing weight), the weight summed as ExpertWeight does.
  std::vector<std::vector<std::pair<int64_t, float>>> routed(experts);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t k = 0; k < top_k; ++k) {
      const int32_t id = ids.i[t * top_k + k];
      if (id < 0 || id >= routed_experts) return absl::OutOfRangeError(absl::StrCat("expert id ", id, " out of range"));
      const int64_t e = id - first;
      if (e < 0 || e >= experts) continue;  // another rank's expert
      auto& group = routed[e];
      if (!group.empty() && group.back().first == t) group.back().second += weights.f[t * top_k + k];
      else group.push_back({t, 0.0f + weights.f[t * top_k + k]});
    }
  }
  out[0]->Allocate(node.output()->type().dtype, {tokens, hidden});
  std::vector<float> act(inter), up(inter);
  for (int64_t e = 0; e < experts; ++e) {
    if (routed[e].empty()) continue;
    const std::array<const Tensor*, 3> w = expert_weights(e);
    const Tensor &w_gate = *w[0], &w_up = *w[1], &w_down = *w[2];
    for (const auto& [t, weight] : routed[e]) {
      const float* xt = x.f.data() + t * hidden;
      for (int64_t o = 0; o < inter; ++o) {
        double g = 0, u = 0;
        for (int64_t j = 0; j < hidden; ++j) {
          g += static_cast<double>(xt[j]) * w_gate.f[o * hidden + j];
          u += static_cast<double>(xt[j]) * w_up.f[o * hidden + j];
        }
        const double gf = static_cast<float>(g);
        const float silu = static_cast<float>(gf / (1.0 + std::exp(-gf)));
        act[o] = silu * static_cast<float>(u);
      }
      float* yt = out[0]->f.data() + t * hidden;
      for (int64_t o = 0; o < hidden; ++o) {
        double acc = 0;
        for (int64_t j = 0; j < inter; ++j) acc += static_cast<double>(act[j]) * w_down.f[o * inter + j];
        const float weighted = static_cast<float>(acc) * weight;
        yt[o] += weighted;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status AllReduce(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext& ctx) {
  if (ctx.communicator == nullptr) return absl::FailedPreconditionError("no communicator");
  *out[0] = *in[0];
  return ctx.communicator->AllReduceSum(out[0]->f.data(), out[0]->size());
}

absl::Status AllGather(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext& ctx) {
  if (ctx.communicator == nullptr) return absl::FailedPreconditionError("no communicator");
  DSRT_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, node.attrs().GetInts("sizes"));
  const Tensor& x = *in[0];
  const int64_t rows = x.size() / std::max<int64_t>(x.dims.back(), 1);
  std::vector<int64_t> counts;
  int64_t width = 0;
  for (int64_t size : sizes) {
    counts.push_back(rows * size);
    width += size;
  }
  std::vector<float> flat(rows * width);
  DSRT_RETURN_IF_ERROR(ctx.communicator->AllGather(x.f.data(), flat.data(), counts));
  std::vector<int64_t> dims = x.dims;
  dims.back() = width;
  out[0]->Allocate(node.output()->type().dtype, dims);
  InterleaveColumns(flat.data(), rows, sizes, out[0]->f.data());
  return absl::OkStatus();
}

absl::Status ExpertCombine(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext& ctx) {
  if (ctx.communicator == nullptr) return absl::FailedPreconditionError("no communicator");
  DSRT_ASSIGN_OR_RETURN(ExpertPlacement placement, ExpertPlacementOf(node));
  const Tensor &partial = *in[0], &ids = *in[1];
  out[0]->Allocate(ir::DType::kF32, partial.dims);
  ExpertCombineScratch scratch;
  return CombineExperts(partial.f.data(), ids.i.data(), partial.dims[0], partial.dims[1], ids.dims[1], placement,
                        *ctx.communicator, out[0]->f.data(), &scratch);
}

absl::Status FusedMoe(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  DSRT_ASSIGN_OR_RETURN(int64_t experts, node.attrs().GetInt("num_experts"));
  return RunExperts(node, in, out, [&](int64_t e) -> std::array<const Tensor*, 3> {
    return {in[3 + e], in[3 + experts + e], in[3 + 2 * experts + e]};
  });
}

// FusedMoE over the dequantized weights of the experts that have tokens.
absl::Status QFusedMoe(const ir::Node& node, const Inputs& in, const Outputs& out, KernelContext&) {
  DSRT_ASSIGN_OR_RETURN(int64_t experts, node.attrs().GetInt("num_experts"));
  DSRT_ASSIGN_OR_RETURN(int64_t group_size, node.attrs().GetInt("group_size"));
  std::array<Tensor, 3> dequantized;
  return RunExperts(node, in, out, [&](int64_t e) -> std::array<const Tensor*, 3> {
    for (int64_t p = 0; p < 3; ++p) {
      const int64_t i = p * experts + e;
      dequantized[p] = Dequantize(*in[3 + i], *in[3 + 3 * experts + i], group_size);
    }
    return {&dequantized[0], &dequantized[1], &dequantized[2]};
  });
}

}  // namespace

int64_t Tensor::size() const { return ir::NumElements(dims); }

void Tensor::Allocate(ir::DType type, std::vector<int64_t> shape) {
  dtype = type;
  dims = std::move(shape);
  f.clear();
  i.clear();
  if (is_int()) i.assign(size(), 0);
  else f.assign(size(), 0.0f);
}

void Tensor::RoundToDType() {
  if (dtype != ir::DType::kBF16) return;
  for (float& x : f) x = ir::RoundToBF16(x);
}

const absl::flat_hash_map<std::string, Kernel>& Kernels() {
  static const auto* kernels = new absl::flat_hash_map<std::string, Kernel>{
      {"AllReduce", AllReduce},
      {"AllGather", AllGather},
      {"ExpertCombine", ExpertCombine},
      {"Embedding", Embedding},
      {"RMSNorm", RmsNorm},
      {"Linear", Linear},
      {"Add", [](const ir::Node& n, const Inputs& in, const Outputs& out, KernelContext&) {
         return Binary(n, in, out, [](float a, float b) { return a + b; });
       }},
      {"Mul", [](const ir::Node& n, const Inputs& in, const Outputs& out, KernelContext&) {
         return Binary(n, in, out, [](float a, float b) { return a * b; });
       }},
      {"Silu", Silu},
      {"SwiGLU", SwiGlu},
      {"AddRMSNorm", AddRmsNorm},
      {"Cast", Cast},
      {"Reshape", Reshape},
      {"Expand", Expand},
      {"Slice", Slice},
      {"Concat", Concat},
      {"Rope", Rope},
      {"Attention", Attention},
      {"MLAAttention", MlaAttention},
      {"Router", Router},
      {"ExpertWeight", ExpertWeight},
      {"FusedMoE", FusedMoe},
      {"QLinear", QLinear},
      {"QFusedMoE", QFusedMoe},
  };
  return *kernels;
}

}  // namespace dsrt::backends::reference
