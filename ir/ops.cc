// The op set. One Register call per op: arity, attributes, shape inference, and
// for attention the KV cache it owns. The reference backend (backends/reference)
// is the executable definition of each op's semantics.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "ir/op_registry.h"
#include "ir/status_macros.h"

namespace dsrt::ir {
namespace {

using Types = std::vector<TensorType>;
using Inputs = absl::Span<const TensorType>;

// Bounds that keep shape arithmetic far from overflow (a corrupt engine may say anything).
constexpr int64_t kMaxDim = int64_t{1} << 31;
constexpr int64_t kMaxElements = int64_t{1} << 40;

absl::Status Invalid(absl::string_view op, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", why));
}



DType Promote(DType a, DType b) {
  if (a == DType::kF32 || b == DType::kF32) return DType::kF32;
  return a;
}

absl::Status ExpectRank(absl::string_view op, const TensorType& t, int rank, absl::string_view what) {
  if (t.rank() == rank) return absl::OkStatus();
  return Invalid(op, absl::StrCat(what, " must have rank ", rank, ", got ", t.ToString()));
}

absl::Status ExpectDType(absl::string_view op, const TensorType& t, DType dtype, absl::string_view what) {
  if (t.dtype == dtype) return absl::OkStatus();
  return Invalid(op, absl::StrCat(what, " must be ", DTypeName(dtype), ", got ", t.ToString()));
}

// x[..., in] times weight[out, in]^T: [..., out], in attr 'dtype' if given, else x's.
absl::StatusOr<TensorType> MatmulOutput(absl::string_view op, const TensorType& x, const TensorType& weight,
                                        const AttrMap& attrs) {
  if (x.rank() < 1 || weight.rank() != 2 || !(x.dims.back() == weight.dims[1])) {
    return Invalid(op, absl::StrCat("x ", x.ToString(), " does not match weight ", weight.ToString()));
  }
  TensorType out = x;
  out.dims.back() = weight.dims[0];
  if (attrs.Has("dtype")) {
    DSRT_ASSIGN_OR_RETURN(std::string dtype, attrs.GetString("dtype"));
    DSRT_ASSIGN_OR_RETURN(out.dtype, ParseDType(dtype));
  }
  return out;
}

// numpy broadcasting over trailing dims.
absl::StatusOr<TensorType> Broadcast(absl::string_view op, const TensorType& a, const TensorType& b) {
  TensorType out{Promote(a.dtype, b.dtype), {}};
  const int rank = std::max(a.rank(), b.rank());
  for (int i = 0; i < rank; ++i) {
    const int ia = a.rank() - rank + i;
    const int ib = b.rank() - rank + i;
    Dim da = ia >= 0 ? a.dims[ia] : Dim::Static(1);
    Dim db = ib >= 0 ? b.dims[ib] : Dim::Static(1);
    if (da == db || (!db.is_symbolic() && db.size == 1)) {
      out.dims.push_back(da);
    } else if (!da.is_symbolic() && da.size == 1) {
      out.dims.push_back(db);
    } else {
      return Invalid(op, absl::StrCat("cannot broadcast ", a.ToString(), " with ", b.ToString()));
    }
  }
  return out;
}

// The optional rotary embedding an attention op applies itself: attrs 'rope_inv_freq'
// (one frequency per pair of the `rope` dim) and 'rope_scale'.
absl::Status CheckFusedRope(absl::string_view op, const AttrMap& attrs, int64_t rope) {
  if (!attrs.Has("rope_inv_freq")) {
    if (attrs.Has("rope_scale")) return Invalid(op, "rope_scale without rope_inv_freq");
    return absl::OkStatus();
  }
  DSRT_ASSIGN_OR_RETURN(std::vector<double> inv_freq, attrs.GetDoubles("rope_inv_freq"));
  if (2 * static_cast<int64_t>(inv_freq.size()) != rope) {
    return Invalid(op, absl::StrCat("rope_inv_freq has ", inv_freq.size(), " frequencies for a rope dim of ", rope));
  }
  if (attrs.Has("rope_scale")) DSRT_RETURN_IF_ERROR(attrs.GetDouble("rope_scale").status());
  return absl::OkStatus();
}

void RegisterSourceOps(OpRegistry& r) {
  r.Register({.name = "Parameter",
              .summary = "A step input (token_ids, positions), named by attr 'name'.",
              .required_attrs = {"name"},
              .declares_outputs = true});
  r.Register({.name = "Constant",
              .summary = "A weight, named by attr 'weight' in the engine's weight table.",
              .required_attrs = {"weight"},
              .declares_outputs = true});
}

void RegisterElementwiseOps(OpRegistry& r) {
  for (const char* op : {"Add", "Mul"}) {
    r.Register({.name = op,
                .summary = "Elementwise with numpy broadcasting; f32 if either input is f32.",
                .min_inputs = 2,
                .max_inputs = 2,
                .infer = [op](const AttrMap&, Inputs in) -> absl::StatusOr<Types> {
                  DSRT_ASSIGN_OR_RETURN(TensorType t, Broadcast(op, in[0], in[1]));
                  return Types{t};
                }});
  }
  r.Register({.name = "Silu",
              .summary = "x * sigmoid(x).",
              .min_inputs = 1,
              .max_inputs = 1,
              .infer = [](const AttrMap&, Inputs in) -> absl::StatusOr<Types> { return Types{in[0]}; }});
  r.Register({.name = "SwiGLU",
              .summary = "silu(gate) * up over two tensors of one float type: exactly Mul(Silu(gate), up), "
                         "silu(g) = g / (1 + exp(-g)) rounded to the dtype before the product.",
              .min_inputs = 2,
              .max_inputs = 2,
              .infer = [](const AttrMap&, Inputs in) -> absl::StatusOr<Types> {
                if (!(in[0] == in[1]) || !IsFloat(in[0].dtype)) {
                  return Invalid("SwiGLU", absl::StrCat("gate ", in[0].ToString(), " and up ", in[1].ToString(),
                                                        " must be one float type"));
                }
                return Types{in[0]};
              }});
  r.Register({.name = "Cast",
              .summary = "Converts to attr 'dtype' (round to nearest even).",
              .min_inputs = 1,
              .max_inputs = 1,
              .required_attrs = {"dtype"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                DSRT_ASSIGN_OR_RETURN(std::string name, attrs.GetString("dtype"));
                TensorType t = in[0];
                DSRT_ASSIGN_OR_RETURN(t.dtype, ParseDType(name));
                return Types{t};
              }});
}

void RegisterShapeOps(OpRegistry& r) {
  r.Register({.name = "Reshape",
              .summary = "Attr 'shape': 0 copies the input dim at that index, -1 is inferred.",
              .min_inputs = 1,
              .max_inputs = 1,
              .required_attrs = {"shape"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                DSRT_ASSIGN_OR_RETURN(std::vector<int64_t> shape, attrs.GetInts("shape"));
                const TensorType& x = in[0];
                TensorType out{x.dtype, {}};
                int64_t known = 1;
                int infer_at = -1;
                std::vector<Dim> copied_symbols;
                for (size_t i = 0; i < shape.size(); ++i) {
                  if (shape[i] == 0) {
                    if (i >= x.dims.size()) return Invalid("Reshape", "0 refers past the input's rank");
                    out.dims.push_back(x.dims[i]);
                    if (x.dims[i].is_symbolic()) copied_symbols.push_back(x.dims[i]);
                    else if (__builtin_mul_overflow(known, x.dims[i].size, &known)) return Invalid("Reshape", "overflow");
                  } else if (shape[i] == -1) {
                    if (infer_at >= 0) return Invalid("Reshape", "more than one -1 in shape");
                    infer_at = static_cast<int>(i);
                    out.dims.push_back(Dim::Static(0));
                  } else if (shape[i] < -1 || shape[i] > kMaxDim) {
                    return Invalid("Reshape", absl::StrCat("shape entry ", shape[i], " is out of range"));
                  } else {
                    out.dims.push_back(Dim::Static(shape[i]));
                    if (__builtin_mul_overflow(known, shape[i], &known)) return Invalid("Reshape", "overflow");
                  }
                }
                // Symbolic dims must be carried over one for one.
                int64_t total = 1;
                std::vector<Dim> input_symbols;
                for (const Dim& d : x.dims) {
                  if (d.is_symbolic()) input_symbols.push_back(d);
                  else if (__builtin_mul_overflow(total, d.size, &total)) return Invalid("Reshape", "overflow");
                }
                if (known > kMaxElements || total > kMaxElements) return Invalid("Reshape", "too many elements");
                if (input_symbols != copied_symbols) {
                  return Invalid("Reshape", absl::StrCat("symbolic dims of ", x.ToString(), " must be kept in place"));
                }
                if (infer_at >= 0) {
                  if (known == 0 || total % known != 0) {
                    return Invalid("Reshape", absl::StrCat("cannot infer -1 reshaping ", x.ToString()));
                  }
                  out.dims[infer_at] = Dim::Static(total / known);
                  known *= total / known;
                }
                if (known != total) {
                  return Invalid("Reshape", absl::StrCat("element count differs reshaping ", x.ToString(), " to ",
                                                         out.ToString()));
                }
                return Types{out};
              }});
  r.Register({.name = "Expand",
              .summary = "Broadcasts size-1 dims to attr 'shape' (0 keeps the input dim).",
              .min_inputs = 1,
              .max_inputs = 1,
              .required_attrs = {"shape"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                DSRT_ASSIGN_OR_RETURN(std::vector<int64_t> shape, attrs.GetInts("shape"));
                TensorType t = in[0];
                if (static_cast<int>(shape.size()) != t.rank()) return Invalid("Expand", "shape must keep the rank");
                for (int i = 0; i < t.rank(); ++i) {
                  if (shape[i] == 0 || (!t.dims[i].is_symbolic() && t.dims[i].size == shape[i])) continue;
                  if (t.dims[i].is_symbolic() || t.dims[i].size != 1) {
                    return Invalid("Expand", absl::StrCat("cannot expand ", t.ToString(), " at dim ", i));
                  }
                  t.dims[i] = Dim::Static(shape[i]);
                }
                return Types{t};
              }});
  r.Register({.name = "Slice",
              .summary = "x[..., start:end, ...] along attr 'axis'.",
              .min_inputs = 1,
              .max_inputs = 1,
              .required_attrs = {"axis", "start", "end"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                DSRT_ASSIGN_OR_RETURN(int64_t axis, attrs.GetInt("axis"));
                DSRT_ASSIGN_OR_RETURN(int64_t start, attrs.GetInt("start"));
                DSRT_ASSIGN_OR_RETURN(int64_t end, attrs.GetInt("end"));
                TensorType t = in[0];
                if (axis < 0) axis += t.rank();
                if (axis < 0 || axis >= t.rank()) return Invalid("Slice", "axis out of range");
                const Dim& d = t.dims[axis];
                if (d.is_symbolic()) return Invalid("Slice", "cannot slice a symbolic dim");
                if (start < 0 || end > d.size || start >= end) {
                  return Invalid("Slice", absl::StrCat("range [", start, ",", end, ") outside dim ", d.size));
                }
                t.dims[axis] = Dim::Static(end - start);
                return Types{t};
              }});
  r.Register({.name = "Concat",
              .summary = "Joins its inputs along attr 'axis'.",
              .min_inputs = 1,
              .max_inputs = -1,
              .required_attrs = {"axis"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                DSRT_ASSIGN_OR_RETURN(int64_t axis, attrs.GetInt("axis"));
                TensorType out = in[0];
                if (axis < 0) axis += out.rank();
                if (axis < 0 || axis >= out.rank()) return Invalid("Concat", "axis out of range");
                for (size_t i = 1; i < in.size(); ++i) {
                  const TensorType& t = in[i];
                  if (t.rank() != out.rank() || t.dtype != out.dtype) {
                    return Invalid("Concat", absl::StrCat("input ", i, " ", t.ToString(), " does not match ",
                                                          in[0].ToString()));
                  }
                  for (int a = 0; a < t.rank(); ++a) {
                    if (a == axis) continue;
                    if (!(t.dims[a] == out.dims[a])) return Invalid("Concat", "non-axis dims differ");
                  }
                  if (t.dims[axis].is_symbolic() || out.dims[axis].is_symbolic()) {
                    return Invalid("Concat", "cannot concat along a symbolic dim");
                  }
                  out.dims[axis].size += t.dims[axis].size;
                  if (out.dims[axis].size > kMaxDim) return Invalid("Concat", "result too large");
                }
                return Types{out};
              }});
}

void RegisterLayerOps(OpRegistry& r) {
  r.Register({.name = "Embedding",
              .summary = "Rows of table[V,H] picked by ids[T]; output in attr 'dtype'.",
              .min_inputs = 2,
              .max_inputs = 2,
              .required_attrs = {"dtype"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                DSRT_RETURN_IF_ERROR(ExpectRank("Embedding", in[0], 2, "table"));
                DSRT_RETURN_IF_ERROR(ExpectDType("Embedding", in[1], DType::kI32, "ids"));
                DSRT_ASSIGN_OR_RETURN(std::string dtype, attrs.GetString("dtype"));
                TensorType out{DType::kF32, in[1].dims};
                DSRT_ASSIGN_OR_RETURN(out.dtype, ParseDType(dtype));
                out.dims.push_back(in[0].dims[1]);
                return Types{out};
              }});
  r.Register({.name = "RMSNorm",
              .summary = "x / sqrt(mean(x^2) + eps) * weight, over the last dim.",
              .min_inputs = 2,
              .max_inputs = 2,
              .required_attrs = {"eps"},
              .infer = [](const AttrMap&, Inputs in) -> absl::StatusOr<Types> {
                DSRT_RETURN_IF_ERROR(ExpectRank("RMSNorm", in[1], 1, "weight"));
                if (in[0].rank() < 1 || !(in[0].dims.back() == in[1].dims[0])) {
                  return Invalid("RMSNorm", absl::StrCat("x ", in[0].ToString(), " does not match weight ",
                                                         in[1].ToString()));
                }
                return Types{in[0]};
              }});
  r.Register({.name = "AddRMSNorm",
              .summary = "The residual add and the RMSNorm after it: sum = x + residual (one type, rounded to "
                         "it), normed = RMSNorm(sum, weight) with attr 'eps'. Outputs (sum, normed), exactly "
                         "Add(x, residual) then RMSNorm of that sum.",
              .min_inputs = 3,
              .max_inputs = 3,
              .num_outputs = 2,
              .required_attrs = {"eps"},
              .infer = [](const AttrMap&, Inputs in) -> absl::StatusOr<Types> {
                const TensorType &x = in[0], &residual = in[1], &weight = in[2];
                if (!(x == residual) || !IsFloat(x.dtype)) {
                  return Invalid("AddRMSNorm", absl::StrCat("x ", x.ToString(), " and residual ",
                                                            residual.ToString(), " must be one float type"));
                }
                DSRT_RETURN_IF_ERROR(ExpectRank("AddRMSNorm", weight, 1, "weight"));
                if (x.rank() < 1 || !(x.dims.back() == weight.dims[0])) {
                  return Invalid("AddRMSNorm", absl::StrCat("x ", x.ToString(), " does not match weight ",
                                                            weight.ToString()));
                }
                return Types{x, x};
              }});
  r.Register({.name = "Linear",
              .summary = "x[..., in] @ weight[out, in]^T (the Hugging Face layout), accumulated in f32; "
                         "the result is in attr 'dtype' (default: x's dtype).",
              .min_inputs = 2,
              .max_inputs = 2,
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                DSRT_RETURN_IF_ERROR(ExpectRank("Linear", in[1], 2, "weight"));
                DSRT_ASSIGN_OR_RETURN(TensorType out, MatmulOutput("Linear", in[0], in[1], attrs));
                return Types{out};
              }});
  r.Register({.name = "Rope",
              .summary = "Rotary embedding of x[T, ..., D] at positions[T]: pairs (x[2i], x[2i+1]) rotate by "
                         "position * inv_freq[i]; cos and sin are multiplied by attr 'scale'.",
              .min_inputs = 2,
              .max_inputs = 2,
              .required_attrs = {"inv_freq"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                DSRT_ASSIGN_OR_RETURN(std::vector<double> inv_freq, attrs.GetDoubles("inv_freq"));
                DSRT_RETURN_IF_ERROR(ExpectDType("Rope", in[1], DType::kI32, "positions"));
                const TensorType& x = in[0];
                if (x.rank() < 2 || x.dims.back().is_symbolic() ||
                    x.dims.back().size != 2 * static_cast<int64_t>(inv_freq.size())) {
                  return Invalid("Rope", absl::StrCat("x ", x.ToString(), " needs a last dim of ",
                                                      2 * inv_freq.size()));
                }
                return Types{x};
              }});
  r.Register({.name = "Attention",
              .summary = "Causal multi-head attention. Appends k[T,H,Dk] and v[T,H,Dv] to KV-cache slot "
                         "'cache_slot' (kept in attr 'cache_dtype', default q's dtype) at each token's "
                         "position, then attends q[T,H,Dk] to the cached positions 0..position, "
                         "softmax(q.k * scale).",
              .min_inputs = 4,
              .max_inputs = 4,
              .required_attrs = {"cache_slot", "scale"},
              .infer = [](const AttrMap&, Inputs in) -> absl::StatusOr<Types> {
                const TensorType &q = in[0], &k = in[1], &v = in[2];
                for (const TensorType* t : {&q, &k, &v}) DSRT_RETURN_IF_ERROR(ExpectRank("Attention", *t, 3, "q/k/v"));
                DSRT_RETURN_IF_ERROR(ExpectDType("Attention", in[3], DType::kI32, "positions"));
                if (!(q.dims[1] == k.dims[1]) || !(q.dims[2] == k.dims[2]) || !(k.dims[1] == v.dims[1])) {
                  return Invalid("Attention", absl::StrCat("q ", q.ToString(), ", k ", k.ToString(), ", v ",
                                                           v.ToString(), " disagree"));
                }
                TensorType out = v;
                out.dtype = q.dtype;
                return Types{out};
              },
              .cache_row = [](const AttrMap&, Inputs in) -> absl::StatusOr<int64_t> {
                if (in.size() < 3 || in[1].rank() != 3 || in[2].rank() != 3) {
                  return Invalid("Attention", "k and v must have rank 3");
                }
                return in[1].dims[1].size * (in[1].dims[2].size + in[2].dims[2].size);
              }});
  r.Register({.name = "MLAAttention",
              .summary = "Multi-head latent attention (absorbed MLA). Appends [c_kv | k_pe] to KV-cache slot "
                         "'cache_slot' (in attr 'cache_dtype', default f32) at each token's position; per head h, "
                         "with W_UK[h], W_UV[h] the rows h*(nope+v) .. +nope and the next v rows of kv_b_weight: "
                         "q_lat = W_UK[h]^T q_nope[h], score_j = (q_lat.c_kv_j + q_pe[h].k_pe_j) * scale over the "
                         "cached positions 0..position, softmax, out[h] = W_UV[h] sum_j p_j c_kv_j. Inputs: "
                         "q_nope[T,H,nope], q_pe[T,H,rope] and k_pe[T,rope] or [T,1,rope] (both rotated), "
                         "c_kv[T,rank] (normed), kv_b_weight[H*(nope+v),rank], positions[T]; output f32[T,H,v]. "
                         "With attr 'rope_inv_freq' (doubles, rope/2 of them) q_pe and k_pe come un-rotated and "
                         "the op first rotates both exactly as Rope(x, positions) {inv_freq=rope_inv_freq, "
                         "scale=rope_scale (default 1)} would, rounding to their dtype.",
              .min_inputs = 6,
              .max_inputs = 6,
              .required_attrs = {"cache_slot", "scale", "heads", "qk_nope_head_dim", "v_head_dim"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                constexpr absl::string_view op = "MLAAttention";
                DSRT_ASSIGN_OR_RETURN(int64_t heads, attrs.GetInt("heads"));
                DSRT_ASSIGN_OR_RETURN(int64_t nope, attrs.GetInt("qk_nope_head_dim"));
                DSRT_ASSIGN_OR_RETURN(int64_t v_dim, attrs.GetInt("v_head_dim"));
                if (heads < 1 || heads > kMaxDim || nope < 1 || nope > kMaxDim || v_dim < 1 || v_dim > kMaxDim) {
                  return Invalid(op, "heads, qk_nope_head_dim and v_head_dim must be positive");
                }
                const TensorType &q_nope = in[0], &q_pe = in[1], &c_kv = in[2], &k_pe = in[3], &w = in[4];
                DSRT_RETURN_IF_ERROR(ExpectRank(op, q_nope, 3, "q_nope"));
                DSRT_RETURN_IF_ERROR(ExpectRank(op, q_pe, 3, "q_pe"));
                DSRT_RETURN_IF_ERROR(ExpectRank(op, c_kv, 2, "c_kv"));
                DSRT_RETURN_IF_ERROR(ExpectRank(op, w, 2, "kv_b_weight"));
                DSRT_RETURN_IF_ERROR(ExpectRank(op, in[5], 1, "positions"));
                DSRT_RETURN_IF_ERROR(ExpectDType(op, in[5], DType::kI32, "positions"));
                if (k_pe.rank() != 2 && !(k_pe.rank() == 3 && k_pe.dims[1] == Dim::Static(1))) {
                  return Invalid(op, absl::StrCat("k_pe must be [T,rope] or [T,1,rope], got ", k_pe.ToString()));
                }
                const Dim tokens = q_nope.dims[0];
                for (const TensorType* t : {&q_pe, &c_kv, &k_pe, &in[5]}) {
                  if (!(t->dims[0] == tokens)) {
                    return Invalid(op, absl::StrCat(t->ToString(), " disagrees with q_nope ", q_nope.ToString(),
                                                    " on the token dim"));
                  }
                }
                if (!(q_nope.dims[1] == Dim::Static(heads)) || !(q_pe.dims[1] == Dim::Static(heads)) ||
                    !(q_nope.dims[2] == Dim::Static(nope))) {
                  return Invalid(op, absl::StrCat("q_nope ", q_nope.ToString(), " and q_pe ", q_pe.ToString(),
                                                  " must be [T,", heads, ",", nope, "] and [T,", heads, ",rope]"));
                }
                if (!(q_pe.dims[2] == k_pe.dims.back()) || q_pe.dims[2].is_symbolic()) {
                  return Invalid(op, absl::StrCat("q_pe ", q_pe.ToString(), " and k_pe ", k_pe.ToString(),
                                                  " disagree on the rope dim"));
                }
                DSRT_RETURN_IF_ERROR(CheckFusedRope(op, attrs, q_pe.dims[2].size));
                int64_t rows = 0;
                if (__builtin_mul_overflow(heads, nope + v_dim, &rows)) return Invalid(op, "overflow");
                if (c_kv.dims[1].is_symbolic() || !(w.dims[1] == c_kv.dims[1]) || !(w.dims[0] == Dim::Static(rows))) {
                  return Invalid(op, absl::StrCat("kv_b_weight ", w.ToString(), " must be [", rows,
                                                  ", rank] with c_kv ", c_kv.ToString(), "'s rank"));
                }
                return Types{MakeType(DType::kF32, {tokens, Dim::Static(heads), Dim::Static(v_dim)})};
              },
              .cache_row = [](const AttrMap&, Inputs in) -> absl::StatusOr<int64_t> {
                // Per token: the latent [kv_lora_rank] and the shared rotated key [qk_rope_head_dim].
                if (in.size() < 4 || in[2].rank() != 2 || in[3].rank() < 2) {
                  return Invalid("MLAAttention", "c_kv must have rank 2 and k_pe rank 2 or 3");
                }
                return in[2].dims[1].size + in[3].dims.back().size;
              }});
}

// FusedMoE's checks; `op` names the op in errors (QFusedMoE passes its values as weights).
// An expert-parallel rank holds experts first_expert .. first_expert + num_experts - 1 of
// the layer's routed_experts (both attrs optional, together); tokens routed elsewhere
// are another rank's work.
absl::Status CheckExpertRange(absl::string_view op, const AttrMap& attrs, int64_t experts, int64_t top_k) {
  const int64_t first = attrs.IntOr("first_expert", 0);
  const int64_t routed = attrs.IntOr("routed_experts", experts);
  if (attrs.Has("first_expert") != attrs.Has("routed_experts")) {
    return Invalid(op, "first_expert and routed_experts come together");
  }
  if (first < 0 || routed > kMaxDim || first + experts > routed) {
    return Invalid(op, absl::StrCat("experts ", first, "..", first + experts - 1, " lie outside the layer's ",
                                    routed, " routed experts"));
  }
  if (top_k < 1 || top_k > routed) return Invalid(op, "top_k outside [1, routed experts]");
  return absl::OkStatus();
}

absl::StatusOr<Types> InferFusedMoe(absl::string_view op, const AttrMap& attrs, Inputs in) {
  DSRT_ASSIGN_OR_RETURN(int64_t experts, attrs.GetInt("num_experts"));
  DSRT_ASSIGN_OR_RETURN(int64_t top_k, attrs.GetInt("top_k"));
  if (experts < 1 || experts > kMaxDim) return Invalid(op, "num_experts must be positive");
  DSRT_RETURN_IF_ERROR(CheckExpertRange(op, attrs, experts, top_k));
  if (static_cast<int64_t>(in.size()) != 3 + 3 * experts) {
    return Invalid(op, absl::StrCat("takes x, topk_ids, topk_weights and 3 x ", experts,
                                    " expert weights, has ", in.size(), " inputs"));
  }
  const TensorType &x = in[0], &ids = in[1], &weights = in[2];
  DSRT_RETURN_IF_ERROR(ExpectRank(op, x, 2, "x"));
  DSRT_RETURN_IF_ERROR(ExpectRank(op, ids, 2, "topk_ids"));
  DSRT_RETURN_IF_ERROR(ExpectRank(op, weights, 2, "topk_weights"));
  DSRT_RETURN_IF_ERROR(ExpectDType(op, ids, DType::kI32, "topk_ids"));
  DSRT_RETURN_IF_ERROR(ExpectDType(op, weights, DType::kF32, "topk_weights"));
  const Dim k = Dim::Static(top_k);
  if (!(ids.dims[0] == x.dims[0]) || !(weights.dims[0] == x.dims[0]) || !(ids.dims[1] == k) ||
      !(weights.dims[1] == k)) {
    return Invalid(op, absl::StrCat("topk_ids ", ids.ToString(), " and topk_weights ",
                                    weights.ToString(), " must be [T,", top_k, "] for x ", x.ToString()));
  }
  const Dim hidden = x.dims[1];
  const Dim inter = in[3].rank() == 2 ? in[3].dims[0] : Dim::Static(0);
  if (hidden.is_symbolic() || inter.is_symbolic() || inter.size < 1) {
    return Invalid(op, absl::StrCat("gate_0 ", in[3].ToString(), " must be a static [I,H]"));
  }
  for (int64_t e = 0; e < experts; ++e) {
    const TensorType &gate = in[3 + e], &up = in[3 + experts + e], &down = in[3 + 2 * experts + e];
    const bool ok = gate.rank() == 2 && up.rank() == 2 && down.rank() == 2 && gate.dims[0] == inter &&
                    gate.dims[1] == hidden && up.dims == gate.dims && down.dims[0] == hidden &&
                    down.dims[1] == inter;
    if (!ok) {
      return Invalid(op, absl::StrCat("expert ", e, ": gate ", gate.ToString(), ", up ", up.ToString(),
                                      ", down ", down.ToString(), " must be [", inter.size, ",",
                                      hidden.size, "], [", inter.size, ",", hidden.size, "], [",
                                      hidden.size, ",", inter.size, "]"));
    }
  }
  return Types{MakeType(DType::kF32, {x.dims[0], hidden})};
}

void RegisterMoeOps(OpRegistry& r) {
  r.Register({.name = "Router",
              .summary = "MoE gate: scores = softmax|sigmoid(x @ weight^T) in f32; top-k by attr 'method' "
                         "(greedy, group_limited_greedy, noaux_tc with the optional bias used for selection "
                         "only); weights renormalized if 'normalize', then multiplied by 'scaling'.",
              .min_inputs = 2,
              .max_inputs = 3,
              .num_outputs = 2,
              .required_attrs = {"scoring", "method", "top_k", "n_group", "topk_group", "normalize", "scaling"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                DSRT_ASSIGN_OR_RETURN(int64_t top_k, attrs.GetInt("top_k"));
                DSRT_ASSIGN_OR_RETURN(int64_t n_group, attrs.GetInt("n_group"));
                DSRT_ASSIGN_OR_RETURN(int64_t topk_group, attrs.GetInt("topk_group"));
                DSRT_RETURN_IF_ERROR(ExpectRank("Router", in[0], 2, "x"));
                DSRT_RETURN_IF_ERROR(ExpectRank("Router", in[1], 2, "weight"));
                const int64_t experts = in[1].dims[0].size;
                if (!(in[0].dims[1] == in[1].dims[1])) return Invalid("Router", "x and weight disagree on hidden size");
                if (top_k < 1 || top_k > experts) return Invalid("Router", "top_k outside [1, experts]");
                if (n_group < 1 || experts % n_group != 0 || topk_group < 1 || topk_group > n_group) {
                  return Invalid("Router", absl::StrCat("groups (n_group ", n_group, ", topk_group ", topk_group,
                                                        ") do not divide ", experts, " experts"));
                }
                if (in.size() == 3 && (in[2].rank() != 1 || in[2].dims[0].size != experts)) {
                  return Invalid("Router", "bias must be [experts]");
                }
                const Dim tokens = in[0].dims[0];
                return Types{MakeType(DType::kI32, {tokens, Dim::Static(top_k)}),
                             MakeType(DType::kF32, {tokens, Dim::Static(top_k)})};
              }});
  r.Register({.name = "ExpertWeight",
              .summary = "Each token's routing weight for expert attr 'expert' (0 when not routed there).",
              .min_inputs = 2,
              .max_inputs = 2,
              .required_attrs = {"expert"},
              .infer = [](const AttrMap&, Inputs in) -> absl::StatusOr<Types> {
                DSRT_RETURN_IF_ERROR(ExpectDType("ExpertWeight", in[0], DType::kI32, "ids"));
                DSRT_RETURN_IF_ERROR(ExpectRank("ExpertWeight", in[0], 2, "ids"));
                return Types{MakeType(DType::kF32, {in[0].dims[0], Dim::Static(1)})};
              }});
  r.Register({.name = "FusedMoE",
              .summary = "The routed experts of an MoE layer in one op: x[T,H], topk_ids[T,K] (i32), "
                         "topk_weights[T,K] (f32), then gate_0..gate_{E-1} [I,H], up_0..up_{E-1} [I,H], "
                         "down_0..down_{E-1} [H,I]. Each expert runs down(silu(gate x) * up x) over just the "
                         "tokens routed to it; results are scaled by the token's routing weight and summed, in "
                         "expert order, into f32[T,H]. Attrs num_experts (E), top_k (K); on an expert-parallel rank "
                         "first_expert and routed_experts: its experts are ids first_expert.., and tokens routed "
                         "to other ids add nothing here.",
              .min_inputs = 6,
              .max_inputs = -1,
              .required_attrs = {"num_experts", "top_k"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                return InferFusedMoe("FusedMoE", attrs, in);
              }});
}

// x[..., in] against quantized values [out, in] and scales f32[out, ceil(in / group_size)].
absl::Status CheckQuantizedWeight(absl::string_view op, const TensorType& values, const TensorType& scales,
                                  int64_t group_size, absl::string_view what) {
  if (values.dtype != DType::kI8 && values.dtype != DType::kI4) {
    return Invalid(op, absl::StrCat(what, " values must be i8 or i4, got ", values.ToString()));
  }
  DSRT_RETURN_IF_ERROR(ExpectRank(op, values, 2, absl::StrCat(what, " values")));
  DSRT_RETURN_IF_ERROR(ExpectRank(op, scales, 2, absl::StrCat(what, " scales")));
  DSRT_RETURN_IF_ERROR(ExpectDType(op, scales, DType::kF32, absl::StrCat(what, " scales")));
  if (values.dims[0].is_symbolic() || values.dims[1].is_symbolic()) {
    return Invalid(op, absl::StrCat(what, " values must be static, got ", values.ToString()));
  }
  const int64_t groups = (values.dims[1].size + group_size - 1) / group_size;
  if (!(scales.dims[0] == values.dims[0]) || !(scales.dims[1] == Dim::Static(groups))) {
    return Invalid(op, absl::StrCat(what, " scales ", scales.ToString(), " must be [", values.dims[0].size, ",", groups,
                                    "] for values ", values.ToString(), " in groups of ", group_size));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> GroupSize(absl::string_view op, const AttrMap& attrs) {
  DSRT_ASSIGN_OR_RETURN(int64_t group_size, attrs.GetInt("group_size"));
  if (group_size < 1 || group_size > kMaxDim) {
    return Invalid(op, absl::StrCat("group_size ", group_size, " must be positive"));
  }
  return group_size;
}

// Weight-only quantized ops: weights as integer values with one f32 scale per group of
// `group_size` consecutive input columns of an output row; w[o, j] = values[o, j] *
// scales[o, j / group_size]. i4 values pack two a byte, low nibble first.
void RegisterQuantizedOps(OpRegistry& r) {
  r.Register({.name = "QLinear",
              .summary = "Linear with a weight-only quantized weight: x[..., in] @ (values[out, in] (i8 or i4) * "
                         "scales[out, ceil(in / group_size)] per group)^T, accumulated in f32; the result is in "
                         "attr 'dtype' (default: x's dtype).",
              .min_inputs = 3,
              .max_inputs = 3,
              .required_attrs = {"group_size"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                DSRT_ASSIGN_OR_RETURN(int64_t group_size, GroupSize("QLinear", attrs));
                DSRT_RETURN_IF_ERROR(CheckQuantizedWeight("QLinear", in[1], in[2], group_size, "weight"));
                DSRT_ASSIGN_OR_RETURN(TensorType out, MatmulOutput("QLinear", in[0], in[1], attrs));
                return Types{out};
              }});
  r.Register({.name = "QFusedMoE",
              .summary = "FusedMoE with weight-only quantized experts: x, topk_ids, topk_weights, then the values "
                         "gate_0..gate_{E-1}, up_0.., down_0.. (i8 or i4, shaped as FusedMoE's weights), then their "
                         "scales in the same order (f32 [rows, ceil(cols / group_size)]). Attrs num_experts, top_k, "
                         "group_size.",
              .min_inputs = 9,
              .max_inputs = -1,
              .required_attrs = {"num_experts", "top_k", "group_size"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                constexpr absl::string_view op = "QFusedMoE";
                DSRT_ASSIGN_OR_RETURN(int64_t experts, attrs.GetInt("num_experts"));
                DSRT_ASSIGN_OR_RETURN(int64_t group_size, GroupSize(op, attrs));
                if (experts < 1 || experts > kMaxDim) return Invalid(op, "num_experts must be positive");
                if (static_cast<int64_t>(in.size()) != 3 + 6 * experts) {
                  return Invalid(op, absl::StrCat("takes x, topk_ids, topk_weights, 3 x ", experts,
                                                  " expert values and as many scales, has ", in.size(), " inputs"));
                }
                for (int64_t i = 0; i < 3 * experts; ++i) {
                  DSRT_RETURN_IF_ERROR(CheckQuantizedWeight(op, in[3 + i], in[3 + 3 * experts + i], group_size,
                                                            absl::StrCat("expert weight ", i)));
                  if (in[3 + i].dtype != in[3].dtype) return Invalid(op, "expert values mix i8 and i4");
                }
                return InferFusedMoe(op, attrs, in.subspan(0, 3 + 3 * experts));
              }});
}

}  // namespace

// Collectives: a partitioned graph's only link to the other ranks. Every rank runs the
// same collectives in the same order.
void RegisterCollectiveOps(OpRegistry& r) {
  r.Register({.name = "AllReduce",
              .summary = "The elementwise sum of x over every rank, on every rank; x is f32.",
              .min_inputs = 1,
              .max_inputs = 1,
              .infer = [](const AttrMap&, Inputs in) -> absl::StatusOr<Types> {
                DSRT_RETURN_IF_ERROR(ExpectDType("AllReduce", in[0], DType::kF32, "x"));
                return Types{in[0]};
              }});
  r.Register({.name = "AllGather",
              .summary = "Every rank's x concatenated along the last axis, in rank order: rank r holds "
                         "sizes[r] columns (attrs 'sizes', and 'rank', this graph's rank); x is f32.",
              .min_inputs = 1,
              .max_inputs = 1,
              .required_attrs = {"sizes", "rank"},
              .infer = [](const AttrMap& attrs, Inputs in) -> absl::StatusOr<Types> {
                constexpr absl::string_view op = "AllGather";
                DSRT_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, attrs.GetInts("sizes"));
                DSRT_ASSIGN_OR_RETURN(int64_t rank, attrs.GetInt("rank"));
                DSRT_RETURN_IF_ERROR(ExpectDType(op, in[0], DType::kF32, "x"));
                if (in[0].rank() < 1) return Invalid(op, "x must have an axis to gather along");
                if (rank < 0 || rank >= static_cast<int64_t>(sizes.size())) {
                  return Invalid(op, absl::StrCat("rank ", rank, " outside the ", sizes.size(), " ranks of 'sizes'"));
                }
                int64_t total = 0;
                for (int64_t size : sizes) {
                  if (size < 0 || size > kMaxDim) return Invalid(op, absl::StrCat("size ", size, " in 'sizes'"));
                  total += size;
                }
                if (!(in[0].dims.back() == Dim::Static(sizes[rank]))) {
                  return Invalid(op, absl::StrCat("x ", in[0].ToString(), " must end in rank ", rank, "'s ",
                                                  sizes[rank], " columns"));
                }
                TensorType out = in[0];
                out.dims.back() = Dim::Static(total);
                return Types{out};
              }});
  r.Register({.name = "ExpertCombine",
              .summary = "The sum over ranks of partial[T,H] (each rank's routed experts), as AllReduce gives "
                         "it, exchanging only the rows of tokens routed to a rank's experts (topk_ids[T,K]): an "
                         "AllToAll to the token's owner, then an AllGather. Attrs routed_experts, expert_blocks "
                         "(blocks of consecutive experts), ranks_per_block.",
              .min_inputs = 2,
              .max_inputs = 2,
              .required_attrs = {"routed_experts", "expert_blocks", "ranks_per_block"},
              .infer = [](const AttrMap&, Inputs in) -> absl::StatusOr<Types> {
                constexpr absl::string_view op = "ExpertCombine";
                DSRT_RETURN_IF_ERROR(ExpectDType(op, in[0], DType::kF32, "partial"));
                DSRT_RETURN_IF_ERROR(ExpectRank(op, in[0], 2, "partial"));
                DSRT_RETURN_IF_ERROR(ExpectDType(op, in[1], DType::kI32, "topk_ids"));
                DSRT_RETURN_IF_ERROR(ExpectRank(op, in[1], 2, "topk_ids"));
                if (!(in[0].dims[0] == in[1].dims[0])) return Invalid(op, "partial and topk_ids differ in tokens");
                return Types{in[0]};
              }});
}

void RegisterCoreOps(OpRegistry& registry) {
  RegisterCollectiveOps(registry);
  RegisterSourceOps(registry);
  RegisterElementwiseOps(registry);
  RegisterShapeOps(registry);
  RegisterLayerOps(registry);
  RegisterMoeOps(registry);
  RegisterQuantizedOps(registry);
}

}  // namespace dsrt::ir
