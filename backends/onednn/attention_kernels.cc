// MLAAttention (latent space, over the KV cache) and the plain multi-head Attention.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backends/onednn/cpu.h"
#include "backends/onednn/kernel.h"
#include "ir/status_macros.h"

namespace dsrt::backends::onednn {
namespace {

// A row of the cache or a weight, in f32 or bf16.
struct RowRef {
  const void* data;
  ir::DType dtype;
  const float* f32() const { return static_cast<const float*>(data); }
  const uint16_t* bf16() const { return static_cast<const uint16_t*>(data); }
  RowRef At(int64_t elements) const {
    return {static_cast<const uint8_t*>(data) + ir::DTypeBytes(dtype, elements), dtype};
  }
};

float Dot(const float* a, RowRef b, int64_t n) {
  return b.dtype == ir::DType::kBF16 ? DotBf16(a, b.bf16(), n) : DotF32(a, b.f32(), n);
}

void AddScaled(float a, RowRef x, float* y, int64_t n) {
  if (x.dtype == ir::DType::kBF16) AxpyBf16(a, x.bf16(), y, n);
  else Axpy(a, x.f32(), y, n);
}

void StoreRow(const float* src, int64_t n, ir::DType dtype, void* dst) {
  if (dtype == ir::DType::kBF16) F32ToBf16(src, static_cast<uint16_t*>(dst), n);
  else std::memcpy(dst, src, n * sizeof(float));
}

// p[j] = exp(s[j] - max) / Σ, over the first `length` entries of s.
void Softmax(float* s, int64_t length) {
  float max_score = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < length; ++j) max_score = std::max(max_score, s[j]);
  double total = 0;
  for (int64_t j = 0; j < length; ++j) total += (s[j] = std::exp(s[j] - max_score));
  const float inv = static_cast<float>(1.0 / total);
  for (int64_t j = 0; j < length; ++j) s[j] *= inv;
}

// Consecutive tokens of one sequence at consecutive positions: one prefill chunk, or
// one decoding sequence's single token.
struct TokenRun {
  int64_t first_token, count;
};

std::vector<TokenRun> SplitRuns(const StepInput& step) {
  std::vector<TokenRun> runs;
  for (int64_t t = 0; t < step.num_tokens(); ++t) {
    if (!runs.empty()) {
      TokenRun& last = runs.back();
      const int64_t prev = last.first_token + last.count - 1;
      if (step.sequence_slots[t] == step.sequence_slots[prev] && step.positions[t] == step.positions[prev] + 1) {
        ++last.count;
        continue;
      }
    }
    runs.push_back({t, 1});
  }
  return runs;
}

class MlaKernel : public Kernel {
 public:
  struct Config {
    int64_t slot, heads, nope, v, rank, rope;
    float scale;
    ir::WeightView kv_b;  // [heads * (nope + v), rank]
    ir::DType cache_dtype;
    std::vector<float> rope_inv_freq;  // empty: q_pe and k_pe come rotated
    double rope_scale = 1.0;
    int q_nope, q_pe, c_kv, k_pe, positions, out;
  };
  MlaKernel(Config c, Dnnl& dnnl) : c_(std::move(c)), matmuls_(dnnl) {}

  // W_UK [h, nope, rank] and W_UV viewed as [h, rank, v], each head's slice of kv_b_proj,
  // packed once for oneDNN in the cache's dtype: the two per-head GEMMs then read
  // blocked weights of the same type as the latents they meet. With a bf16 cache and
  // AVX-512, one decoding token's two products are Bf16Gemv calls instead: oneDNN's
  // batched one-row matmuls read these 4 MB a layer at half the memory's speed.
  absl::Status PackHeads(Dnnl& dnnl, WeightArena& arena) {
    const int64_t h = c_.heads, r = c_.rank, rows = (c_.nope + c_.v) * r;
    if (c_.cache_dtype == ir::DType::kBF16 && UsingAvx512()) DSRT_RETURN_IF_ERROR(PackGemvHeads(arena));
    const auto* w_uv = static_cast<const uint8_t*>(c_.kv_b.data) + ir::DTypeBytes(c_.kv_b.dtype, c_.nope * r);
    DSRT_ASSIGN_OR_RETURN(w_uk_, PackStrided(dnnl, arena, {{h, c_.nope, r}, {rows, r, 1}, c_.kv_b.dtype}, c_.kv_b.data,
                                             c_.cache_dtype, 1, c_.cache_dtype));
    DSRT_ASSIGN_OR_RETURN(w_uv_, PackStrided(dnnl, arena, {{h, r, c_.v}, {rows, 1, r}, c_.kv_b.dtype}, w_uv,
                                             c_.cache_dtype, 1, ir::DType::kF32));
    return absl::OkStatus();
  }

  // Each head's W_UK [nope, rank] and W_UV [rank, v] packed for Bf16Gemv.
  absl::Status PackGemvHeads(WeightArena& arena) {
    const int64_t h = c_.heads, r = c_.rank, head_rows = c_.nope + c_.v, elements = h * head_rows * r;
    std::vector<uint16_t> converted;
    const auto* kv_b = static_cast<const uint16_t*>(c_.kv_b.data);
    if (c_.kv_b.dtype != ir::DType::kBF16) {
      converted.resize(elements);
      F32ToBf16(static_cast<const float*>(c_.kv_b.data), converted.data(), elements);
      kv_b = converted.data();
    }
    uk_elements_ = Bf16GemvPackedElements(c_.nope, r);
    uv_elements_ = Bf16GemvPackedElements(r, c_.v);
    auto* packed = static_cast<uint16_t*>(arena.Allocate(h * (uk_elements_ + uv_elements_) * sizeof(uint16_t)));
    if (packed == nullptr) return absl::ResourceExhaustedError("out of memory packing kv_b_proj for latent attention");
    w_uk_gemv_ = packed;
    w_uv_gemv_ = packed + h * uk_elements_;
    for (int64_t hh = 0; hh < h; ++hh) {
      const uint16_t* head = kv_b + hh * head_rows * r;
      PackBf16Gemv(head, c_.nope, r, r, 1, w_uk_gemv_ + hh * uk_elements_);
      PackBf16Gemv(head + c_.nope * r, r, c_.v, 1, r, w_uv_gemv_ + hh * uv_elements_);
    }
    return absl::OkStatus();
  }

  absl::Status Run(StepContext& ctx) override {
    const ir::DType cache_dtype = ctx.cache().layout().dtype;
    if (cache_dtype != c_.cache_dtype) return absl::InternalError("cache dtype differs from the graph's");
    const float* q_pe = RotatedQueryRope(ctx);
    AppendToCache(ctx);
    const std::vector<TokenRun> runs = SplitRuns(ctx.step());
    if (runs.size() > 1 && static_cast<int64_t>(runs.size()) == ctx.tokens()) {
      DecodeBatch(ctx, q_pe);
      return absl::OkStatus();
    }
    for (const TokenRun& run : runs) {
      for (int64_t i = 0; i < run.count; i += kChunk) {
        GemmChunk(ctx, q_pe, run.first_token + i, std::min(kChunk, run.count - i));
      }
    }
    return absl::OkStatus();
  }

 private:
  // Queries per GEMM chunk: bounds the scores buffer (heads × chunk × length floats).
  static constexpr int64_t kChunk = 256;
  static constexpr int64_t kLengthStep = 64;

  const float* RotatedQueryRope(StepContext& ctx) {
    if (c_.rope_inv_freq.empty()) return ctx.F(c_.q_pe);
    q_pe_rotated_.resize(ctx.Elements(c_.q_pe));
    Rotate(ctx.F(c_.q_pe), ctx.I(c_.positions), ctx.tokens(), c_.heads, q_pe_rotated_.data());
    return q_pe_rotated_.data();
  }

  void Rotate(const float* x, const int32_t* positions, int64_t tokens, int64_t rows_per_token, float* out) const {
    RotateInterleaved(x, positions, tokens, rows_per_token, c_.rope_inv_freq, c_.rope_scale, out);
  }

  void AppendToCache(StepContext& ctx) {
    const float* k_pe = ctx.F(c_.k_pe);
    if (!c_.rope_inv_freq.empty()) {
      k_pe_rotated_.resize(ctx.tokens() * c_.rope);
      Rotate(k_pe, ctx.I(c_.positions), ctx.tokens(), 1, k_pe_rotated_.data());
      k_pe = k_pe_rotated_.data();
    }
    const StepInput& step = ctx.step();
    for (int64_t t = 0; t < ctx.tokens(); ++t) {
      auto* row = static_cast<uint8_t*>(ctx.cache().Row(static_cast<int>(c_.slot), step.sequence_slots[t], step.positions[t]));
      StoreRow(ctx.F(c_.c_kv) + t * c_.rank, c_.rank, c_.cache_dtype, row);
      StoreRow(k_pe + t * c_.rope, c_.rope, c_.cache_dtype, row + ir::DTypeBytes(c_.cache_dtype, c_.rank));
    }
  }

  // Rows 0 .. padded-1 of a sequence's cache slot, [rank + rope] each, as one array:
  // rows from `length` on are never attended to (their probability is 0) and are
  // zeros when gathered. Padding the length lets one matmul primitive serve 64 of them.
  RowRef CachedRows(StepContext& ctx, int sequence, int64_t length, int64_t padded) {
    const int slot = static_cast<int>(c_.slot);
    if (const void* rows = ctx.cache().Contiguous(slot, sequence, padded)) return {rows, c_.cache_dtype};
    const int64_t row_bytes = ir::DTypeBytes(c_.cache_dtype, c_.rank + c_.rope);
    gathered_.assign(row_bytes * padded, 0);
    for (int64_t j = 0; j < length; ++j) {
      std::memcpy(gathered_.data() + j * row_bytes, ctx.cache().Row(slot, sequence, j), row_bytes);
    }
    return {gathered_.data(), c_.cache_dtype};
  }

  // n tokens at positions p0 .. p0+n-1 of one sequence, as four oneDNN matmuls:
  // q_lat = q_nope·W_UK (per head), S = [q_lat | q_pe]·[c_kv | k_pe]ᵀ, causal softmax,
  // o_lat = P·c_kv, out = o_lat·W_UVᵀ (per head). One decoding token is the case n = 1,
  // where the heads become the rows of S's and o_lat's GEMMs.
  void GemmChunk(StepContext& ctx, const float* q_pe, int64_t first, int64_t n) {
    const int64_t width = c_.rank + c_.rope;
    StageQueries(ctx, q_pe, first, n);
    Attend(ctx, first, n, 0, width, 0, c_.rank);
    if (n == 1 && w_uv_gemv_ != nullptr) return OutputOfOneToken(ctx.F(c_.out) + first * c_.heads * c_.v);
    OutputOfTokens(ctx, first, n);
  }

  // A step of B sequences with one token each (batched decode): W_UK and W_UV as one
  // GEMM of B rows a head (the weights read once, not B times), attention per sequence.
  void DecodeBatch(StepContext& ctx, const float* q_pe) {
    const int64_t b = ctx.tokens(), width = c_.rank + c_.rope;
    StageQueries(ctx, q_pe, 0, b);
    for (int64_t t = 0; t < b; ++t) Attend(ctx, t, 1, t * width, b * width, t * c_.rank, b * c_.rank);
    OutputOfTokens(ctx, 0, b);
  }

  // queries_ [h, n, rank + rope] for tokens first .. first+n-1: q_nope·W_UK, then q_pe.
  void StageQueries(StepContext& ctx, const float* q_pe, int64_t first, int64_t n) {
    const int64_t h = c_.heads, r = c_.rank, p = c_.rope, width = r + p, nope = c_.nope;
    const ir::DType dt = c_.cache_dtype;
    const int64_t elem = ir::DTypeBytes(dt, 1);
    // q_nope [n, h, nope] → [h, n, nope] in the compute dtype.
    q_nope_.resize(h * n * nope * elem);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t hh = 0; hh < h; ++hh) {
        StoreRow(ctx.F(c_.q_nope) + ((first + i) * h + hh) * nope, nope, dt, q_nope_.data() + (hh * n + i) * nope * elem);
      }
    }
    queries_.resize(h * n * width * elem);
    if (n == 1 && w_uk_gemv_ != nullptr) {
      QueryLatentsOfOneToken();
    } else {
      matmuls_.Run({{h, n, nope}, {n * nope, nope, 1}, dt}, q_nope_.data(), w_uk_,
                   {{h, n, r}, {n * width, width, 1}, dt}, queries_.data());
    }
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t hh = 0; hh < h; ++hh) {
        StoreRow(q_pe + ((first + i) * h + hh) * p, p, dt, queries_.data() + ((hh * n + i) * width + r) * elem);
      }
    }
  }

  // S, causal softmax and o_lat = P·c_kv for tokens first .. first+n-1 of one sequence.
  // One token (n = 1) reads its h query rows from queries_ at `query_offset`, `query_stride`
  // apart, and writes its h latent rows into latents_ likewise (elements); n tokens read
  // and write [h, n, ·] whole.
  void Attend(StepContext& ctx, int64_t first, int64_t n, int64_t query_offset, int64_t query_stride,
              int64_t latent_offset, int64_t latent_stride) {
    const int64_t h = c_.heads, r = c_.rank, width = r + c_.rope;
    const int64_t p0 = ctx.step().positions[first], visible_end = p0 + n;
    const int64_t length = (visible_end + kLengthStep - 1) / kLengthStep * kLengthStep;
    const ir::DType dt = c_.cache_dtype;
    const int64_t elem = ir::DTypeBytes(dt, 1);
    const RowRef rows = CachedRows(ctx, ctx.step().sequence_slots[first], visible_end, length);
    // [h, n, ·] batched by head, or for n = 1 one [h, ·] matrix.
    const int64_t batch = n == 1 ? 1 : h, m = n == 1 ? h : n;
    const int64_t q_rows = n == 1 ? query_stride : width, l_rows = n == 1 ? latent_stride : r;
    scores_.resize(h * n * length);
    matmuls_.Run({{batch, m, width}, {m * q_rows, q_rows, 1}, dt}, queries_.data() + query_offset * elem,
                 {{1, width, length}, {width * length, 1, width}, dt}, rows.data,
                 {{batch, m, length}, {m * length, length, 1}, ir::DType::kF32}, scores_.data());
    probs_.resize(h * n * length * elem);
    ParallelFor(h * n, length * 4, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t i = row % n, visible = p0 + i + 1;
        float* s = scores_.data() + row * length;
        for (int64_t j = 0; j < visible; ++j) s[j] *= c_.scale;
        Softmax(s, visible);
        std::fill(s + visible, s + length, 0.0f);
        StoreRow(s, length, dt, probs_.data() + row * length * elem);
      }
    });
    const int64_t latent_elements = n == 1 ? latent_offset + (h - 1) * latent_stride + r : h * n * r;
    latents_.resize(std::max<size_t>(latents_.size(), latent_elements * elem));
    matmuls_.Run({{batch, m, length}, {m * length, length, 1}, dt}, probs_.data(),
                 {{1, length, r}, {length * width, width, 1}, dt}, rows.data,
                 {{batch, m, r}, {m * l_rows, l_rows, 1}, dt}, latents_.data() + latent_offset * elem);
  }

  // out [n, h, v] of tokens first .. first+n-1 = latents_ [h, n, rank] · W_UV per head.
  void OutputOfTokens(StepContext& ctx, int64_t first, int64_t n) {
    const int64_t h = c_.heads, r = c_.rank, v = c_.v;
    matmuls_.Run({{h, n, r}, {n * r, r, 1}, c_.cache_dtype}, latents_.data(), w_uv_,
                 {{h, n, v}, {v, h * v, 1}, ir::DType::kF32}, ctx.F(c_.out) + first * h * v);
  }

  // queries_[h, :rank] = q_nope_[h] · W_UK[h] for one token (bf16).
  void QueryLatentsOfOneToken() {
    const int64_t r = c_.rank, width = r + c_.rope;
    const auto* q_nope = reinterpret_cast<const uint16_t*>(q_nope_.data());
    auto* queries = reinterpret_cast<uint16_t*>(queries_.data());
    ParallelFor(c_.heads, c_.nope * r, [&](int64_t begin, int64_t end) {
      thread_local std::vector<float> latent;
      latent.resize(r);
      for (int64_t hh = begin; hh < end; ++hh) {
        Bf16Gemv(q_nope + hh * c_.nope, w_uk_gemv_ + hh * uk_elements_, c_.nope, r, latent.data());
        F32ToBf16(latent.data(), queries + hh * width, r);
      }
    });
  }

  // out[h, :] = latents_[h] · W_UV[h] for one token (bf16 latents).
  void OutputOfOneToken(float* out) {
    const int64_t r = c_.rank;
    const auto* latents = reinterpret_cast<const uint16_t*>(latents_.data());
    ParallelFor(c_.heads, c_.v * r, [&](int64_t begin, int64_t end) {
      for (int64_t hh = begin; hh < end; ++hh) {
        Bf16Gemv(latents + hh * r, w_uv_gemv_ + hh * uv_elements_, r, c_.v, out + hh * c_.v);
      }
    });
  }

  Config c_;
  StridedMatmuls matmuls_;
  dnnl::memory w_uk_, w_uv_;
  uint16_t *w_uk_gemv_ = nullptr, *w_uv_gemv_ = nullptr;  // null: n = 1 goes through oneDNN too
  int64_t uk_elements_ = 0, uv_elements_ = 0;
  std::vector<float> q_pe_rotated_, k_pe_rotated_, scores_;
  std::vector<uint8_t> gathered_, q_nope_, queries_, probs_, latents_;
};

absl::StatusOr<ir::DType> CacheDType(const ir::Node& node) {
  if (!node.attrs().Has("cache_dtype")) return node.input(0)->type().dtype;
  DSRT_ASSIGN_OR_RETURN(std::string name, node.attrs().GetString("cache_dtype"));
  return ir::ParseDType(name);
}

absl::StatusOr<std::unique_ptr<Kernel>> MakeMla(const ir::Node& node, CompileContext& c) {
  MlaKernel::Config k;
  const ir::AttrMap& a = node.attrs();
  DSRT_ASSIGN_OR_RETURN(k.slot, a.GetInt("cache_slot"));
  DSRT_ASSIGN_OR_RETURN(k.heads, a.GetInt("heads"));
  DSRT_ASSIGN_OR_RETURN(k.nope, a.GetInt("qk_nope_head_dim"));
  DSRT_ASSIGN_OR_RETURN(k.v, a.GetInt("v_head_dim"));
  DSRT_ASSIGN_OR_RETURN(double scale, a.GetDouble("scale"));
  k.scale = static_cast<float>(scale);
  DSRT_ASSIGN_OR_RETURN(k.kv_b, c.Weight(node, 4));
  DSRT_ASSIGN_OR_RETURN(k.cache_dtype, CacheDType(node));
  if (k.kv_b.dtype != ir::DType::kF32 && k.kv_b.dtype != ir::DType::kBF16) {
    return absl::UnimplementedError("kv_b_proj must be f32 or bf16 for latent attention");
  }
  if (k.cache_dtype != ir::DType::kF32 && k.cache_dtype != ir::DType::kBF16) {
    return absl::UnimplementedError("the KV cache must be f32 or bf16");
  }
  k.rank = node.input(2)->type().dims.back().size;
  k.rope = node.input(1)->type().dims.back().size;
  if (a.Has("rope_inv_freq")) {
    DSRT_ASSIGN_OR_RETURN(std::vector<double> inv_freq, a.GetDoubles("rope_inv_freq"));
    k.rope_inv_freq.assign(inv_freq.begin(), inv_freq.end());
    k.rope_scale = a.DoubleOr("rope_scale", 1.0);
  }
  k.q_nope = c.Index(node.input(0));
  k.q_pe = c.Index(node.input(1));
  k.c_kv = c.Index(node.input(2));
  k.k_pe = c.Index(node.input(3));
  k.positions = c.Index(node.input(5));
  k.out = c.Index(node.output());
  auto kernel = std::make_unique<MlaKernel>(std::move(k), c.dnnl());
  DSRT_RETURN_IF_ERROR(kernel->PackHeads(c.dnnl(), c.arena()));
  c.Unneeded(node, 4);  // read only while packing
  return kernel;
}

// Per-head K and V in the cache: [k (heads × dk) | v (heads × dv)] a token. The graph
// before mla-absorb; kept so that every pass can be measured against its absence.
class AttentionKernel : public Kernel {
 public:
  AttentionKernel(int64_t slot, float scale, ir::DType cache_dtype, int q, int k, int v, int positions, int out)
      : slot_(slot), scale_(scale), cache_dtype_(cache_dtype), q_(q), k_(k), v_(v), positions_(positions), out_(out) {}

  absl::Status Run(StepContext& ctx) override {
    const std::vector<int64_t> q_dims = ctx.Dims(q_), v_dims = ctx.Dims(v_);
    const int64_t tokens = q_dims[0], heads = q_dims[1], dk = q_dims[2], dv = v_dims[2];
    const int64_t k_width = heads * dk;
    const StepInput& step = ctx.step();
    for (int64_t t = 0; t < tokens; ++t) {
      auto* row = static_cast<uint8_t*>(ctx.cache().Row(static_cast<int>(slot_), step.sequence_slots[t], step.positions[t]));
      StoreRow(ctx.F(k_) + t * k_width, k_width, cache_dtype_, row);
      StoreRow(ctx.F(v_) + t * heads * dv, heads * dv, cache_dtype_, row + ir::DTypeBytes(cache_dtype_, k_width));
    }
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t length = step.positions[t] + 1;
      ParallelFor(heads, length * (dk + dv), [&](int64_t begin, int64_t end) {
        thread_local std::vector<float> scores;
        scores.resize(length);
        for (int64_t h = begin; h < end; ++h) {
          const float* qh = ctx.F(q_) + (t * heads + h) * dk;
          for (int64_t j = 0; j < length; ++j) {
            const RowRef row{ctx.cache().Row(static_cast<int>(slot_), step.sequence_slots[t], j), cache_dtype_};
            scores[j] = Dot(qh, row.At(h * dk), dk) * scale_;
          }
          Softmax(scores.data(), length);
          float* oh = ctx.F(out_) + (t * heads + h) * dv;
          std::fill(oh, oh + dv, 0.0f);
          for (int64_t j = 0; j < length; ++j) {
            const RowRef row{ctx.cache().Row(static_cast<int>(slot_), step.sequence_slots[t], j), cache_dtype_};
            AddScaled(scores[j], row.At(k_width + h * dv), oh, dv);
          }
        }
      });
    }
    return absl::OkStatus();
  }

 private:
  int64_t slot_;
  float scale_;
  ir::DType cache_dtype_;
  int q_, k_, v_, positions_, out_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeAttention(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(int64_t slot, node.attrs().GetInt("cache_slot"));
  DSRT_ASSIGN_OR_RETURN(double scale, node.attrs().GetDouble("scale"));
  DSRT_ASSIGN_OR_RETURN(ir::DType cache_dtype, CacheDType(node));
  if (cache_dtype != ir::DType::kF32 && cache_dtype != ir::DType::kBF16) {
    return absl::UnimplementedError("the KV cache must be f32 or bf16");
  }
  return std::make_unique<AttentionKernel>(slot, static_cast<float>(scale), cache_dtype, c.Index(node.input(0)),
                                           c.Index(node.input(1)), c.Index(node.input(2)), c.Index(node.input(3)),
                                           c.Index(node.output()));
}

}  // namespace

void AddAttentionKernels(absl::flat_hash_map<std::string, KernelFactory>& f) {
  f["MLAAttention"] = MakeMla;
  f["Attention"] = MakeAttention;
}

}  // namespace dsrt::backends::onednn
