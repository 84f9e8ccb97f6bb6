#!/usr/bin/python3
"""Independent NumPy reference for DeepSeek V2 / V2-Lite / V3 inference.

This is the oracle that dsrt is tested against.  It implements the Hugging Face
``modeling_deepseek.py`` semantics (see /work/shared/golden/README.md) in plain,
unoptimised float64 NumPy, with its own safetensors / BF16 / FP8 decoding.  It
depends on nothing but the standard library and NumPy.

Library use::

    from deepseek_ref import load_checkpoint
    model = load_checkpoint("/path/to/hf_checkpoint")
    logits = model.prefill_logits([1, 2, 3])     # float64 [T, vocab]
    tokens = model.greedy([1, 2, 3], 16)          # list of 16 ints

CLI::

    /usr/bin/python3 tests/numpy_ref/deepseek_ref.py --checkpoint DIR --ids 1,2,3 \
        [--out logits.npy] [--greedy N]

Things that are easy to get wrong, and that this file does deliberately:

* RoPE pairs are *interleaved*: (x[2i], x[2i+1]) rotate together at frequency i.
  HF de-interleaves and then uses rotate-half; the dot products are identical.
* ``k_pe`` is a single head shared by every attention head; it comes straight
  out of ``kv_a_proj_with_mqa`` and is *not* normalised by ``kv_a_layernorm``.
* YaRN is applied whenever ``rope_scaling`` is set (at every sequence length).
  Two separate mscale effects exist:
    - softmax scale = q_head_dim^-0.5 * m^2, m = yarn_mscale(factor, mscale_all_dim),
      only when ``mscale_all_dim`` is present and non-zero;
    - cos/sin are multiplied by yarn_mscale(factor, mscale) / yarn_mscale(factor,
      mscale_all_dim) with HF's defaults mscale=1, mscale_all_dim=0 (so a config
      with neither key scales cos/sin by 0.1*ln(factor)+1).
* The router runs on the selected scores; ``noaux_tc`` selects with the biased
  score (sigmoid + e_score_correction_bias) but weights with the unbiased one.
  Rejected groups are excluded (-inf), never filled with 0.
* Top-k weight post-processing differs by model_type (see ``finish_topk_weights``).
"""

import argparse
import json
import math
import os
import struct
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

# ----------------------------------------------------------------------------
# safetensors decoding
# ----------------------------------------------------------------------------


def _fp8_e4m3fn_table() -> np.ndarray:
    """All 256 float8 e4m3fn values: bias 7, no infinities, 0x7f/0xff are NaN."""
    table = np.empty(256, dtype=np.float64)
    for byte in range(256):
        sign = -1.0 if byte & 0x80 else 1.0
        exponent = (byte >> 3) & 0xF
        mantissa = byte & 0x7
        if exponent == 0xF and mantissa == 0x7:
            value = math.nan
        elif exponent == 0:  # subnormal: 0.mmm * 2^(1-7)
            value = sign * (mantissa / 8.0) * 2.0 ** -6
        else:
            value = sign * (1.0 + mantissa / 8.0) * 2.0 ** (exponent - 7)
        table[byte] = value
    return table


FP8_E4M3_TABLE = _fp8_e4m3fn_table()

# safetensors dtype -> (bytes per element, decoder from raw bytes to float64/int array)
_DECODERS = {
    "F64": (8, lambda b: np.frombuffer(b, dtype="<f8").astype(np.float64)),
    "F32": (4, lambda b: np.frombuffer(b, dtype="<f4").astype(np.float64)),
    "F16": (2, lambda b: np.frombuffer(b, dtype="<f2").astype(np.float64)),
    # bfloat16 is the top half of a float32.
    "BF16": (2, lambda b: (np.frombuffer(b, dtype="<u2").astype(np.uint32) << 16)
             .view(np.float32).astype(np.float64)),
    "F8_E4M3": (1, lambda b: FP8_E4M3_TABLE[np.frombuffer(b, dtype=np.uint8)]),
    "I64": (8, lambda b: np.frombuffer(b, dtype="<i8").copy()),
    "I32": (4, lambda b: np.frombuffer(b, dtype="<i4").copy()),
    "I16": (2, lambda b: np.frombuffer(b, dtype="<i2").copy()),
    "I8": (1, lambda b: np.frombuffer(b, dtype="<i1").copy()),
    "U8": (1, lambda b: np.frombuffer(b, dtype="<u1").copy()),
    "BOOL": (1, lambda b: np.frombuffer(b, dtype="<u1").astype(bool)),
}


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
    """Read every tensor of one .safetensors file, decoded (floats become float64)."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len].decode("utf-8"))
    body = memoryview(data)[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = info["dtype"], tuple(info["shape"])
        begin, end = info["data_offsets"]
        if dtype not in _DECODERS:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        itemsize, decode = _DECODERS[dtype]
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * itemsize:
            raise ValueError(f"{path}: tensor {name}: {end - begin} bytes for "
                             f"{dtype}{list(shape)}")
        tensors[name] = decode(body[begin:end]).reshape(shape)
    return tensors


def read_checkpoint_tensors(checkpoint_dir: str) -> Dict[str, np.ndarray]:
    """All tensors of a HF checkpoint: one model.safetensors, or shards + index."""
    index_path = os.path.join(checkpoint_dir, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            weight_map = json.load(f)["weight_map"]
        files = sorted(set(weight_map.values()))
    else:
        files = sorted(n for n in os.listdir(checkpoint_dir) if n.endswith(".safetensors"))
        if not files:
            raise FileNotFoundError(f"no .safetensors files in {checkpoint_dir}")
        weight_map = None
    tensors = {}
    for name in files:
        for tname, value in read_safetensors(os.path.join(checkpoint_dir, name)).items():
            if weight_map is not None and weight_map.get(tname, name) != name:
                continue  # the index says this tensor lives elsewhere
            tensors[tname] = value
    if weight_map is not None:
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise KeyError(f"tensors in the index but not in the shards: {missing[:5]}")
    return tensors


def dequantize_blockwise(weight: np.ndarray, scale_inv: np.ndarray,
                         block: Tuple[int, int] = (128, 128)) -> np.ndarray:
    """W[i, j] = fp8(W)[i, j] * scale_inv[i // bm, j // bn]; edge blocks may be partial."""
    bm, bn = block
    rows, cols = weight.shape
    expected = (-(-rows // bm), -(-cols // bn))
    if scale_inv.shape != expected:
        raise ValueError(f"scale_inv shape {scale_inv.shape} != {expected} for weight "
                         f"{weight.shape} with {bm}x{bn} blocks")
    scale = np.repeat(np.repeat(scale_inv, bm, axis=0), bn, axis=1)[:rows, :cols]
    return weight * scale


def load_tensors_dequantized(checkpoint_dir: str, block: Tuple[int, int]) -> Dict[str, np.ndarray]:
    """Read all tensors and fold every `<name>_scale_inv` into its `<name>` (FP8 blocks)."""
    raw = read_checkpoint_tensors(checkpoint_dir)
    out = {}
    for name, value in raw.items():
        if name.endswith("_scale_inv"):
            continue
        scale_name = name + "_scale_inv"
        if scale_name in raw:
            value = dequantize_blockwise(value, raw[scale_name], block)
        out[name] = value
    orphans = [n for n in raw if n.endswith("_scale_inv") and n[:-len("_scale_inv")] not in raw]
    if orphans:
        raise KeyError(f"scale_inv without weight: {orphans[:5]}")
    return out


# ----------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------


@dataclass
class DeepseekConfig:
    """The config.json fields inference depends on, with HF's defaults filled in."""
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    q_lora_rank: Optional[int]
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    moe_intermediate_size: Optional[int]
    n_routed_experts: Optional[int]
    n_shared_experts: Optional[int]
    num_experts_per_tok: Optional[int]
    topk_method: str
    n_group: Optional[int]
    topk_group: Optional[int]
    scoring_func: str
    norm_topk_prob: bool
    routed_scaling_factor: float
    first_k_dense_replace: int
    moe_layer_freq: int
    rope_theta: float
    rope_scaling: Optional[dict]
    rms_norm_eps: float
    tie_word_embeddings: bool
    fp8_block: Tuple[int, int] = (128, 128)
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def q_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def is_moe_layer(self, i: int) -> bool:
        """HF's rule (the official code ignores moe_layer_freq)."""
        return (self.n_routed_experts is not None
                and i >= self.first_k_dense_replace
                and i % self.moe_layer_freq == 0)


def parse_config(cfg: dict) -> DeepseekConfig:
    model_type = cfg.get("model_type")
    if model_type not in ("deepseek_v2", "deepseek_v3"):
        raise ValueError(f"model_type must be deepseek_v2 or deepseek_v3, got {model_type!r}")
    v3 = model_type == "deepseek_v3"
    if cfg.get("hidden_act", "silu") != "silu":
        raise ValueError(f"unsupported hidden_act {cfg['hidden_act']!r}")
    topk_method = cfg.get("topk_method", "noaux_tc" if v3 else "gready")
    if topk_method == "gready":  # HF V2's misspelt default
        topk_method = "greedy"
    quant = cfg.get("quantization_config") or {}
    block = tuple(quant.get("weight_block_size", (128, 128)))
    return DeepseekConfig(
        model_type=model_type,
        vocab_size=int(cfg["vocab_size"]),
        hidden_size=int(cfg["hidden_size"]),
        intermediate_size=int(cfg["intermediate_size"]),
        num_hidden_layers=int(cfg["num_hidden_layers"]),
        num_attention_heads=int(cfg["num_attention_heads"]),
        # HF's configuration default is 1536, used only if the key is absent.
        q_lora_rank=cfg.get("q_lora_rank", 1536),
        kv_lora_rank=int(cfg["kv_lora_rank"]),
        qk_nope_head_dim=int(cfg["qk_nope_head_dim"]),
        qk_rope_head_dim=int(cfg["qk_rope_head_dim"]),
        v_head_dim=int(cfg["v_head_dim"]),
        moe_intermediate_size=cfg.get("moe_intermediate_size"),
        n_routed_experts=cfg.get("n_routed_experts"),
        n_shared_experts=cfg.get("n_shared_experts"),
        num_experts_per_tok=cfg.get("num_experts_per_tok"),
        topk_method=topk_method,
        n_group=cfg.get("n_group", 8 if v3 else None),
        topk_group=cfg.get("topk_group", 3 if v3 else None),
        scoring_func=cfg.get("scoring_func", "sigmoid" if v3 else "softmax"),
        norm_topk_prob=bool(cfg.get("norm_topk_prob", v3)),
        routed_scaling_factor=float(cfg.get("routed_scaling_factor", 2.5 if v3 else 1.0)),
        first_k_dense_replace=int(cfg.get("first_k_dense_replace", 0)),
        moe_layer_freq=int(cfg.get("moe_layer_freq", 1)),
        rope_theta=float(cfg.get("rope_theta", 10000.0)),
        rope_scaling=cfg.get("rope_scaling"),
        rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        fp8_block=(int(block[0]), int(block[1])),
        raw=cfg,
    )


# ----------------------------------------------------------------------------
# RoPE / YaRN (HF DeepseekV2YarnRotaryEmbedding)
# ----------------------------------------------------------------------------


def yarn_get_mscale(scale: float = 1.0, mscale: float = 1.0) -> float:
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def yarn_find_correction_dim(num_rotations, dim, base, max_position_embeddings) -> float:
    return (dim * math.log(max_position_embeddings / (num_rotations * 2 * math.pi))) / (
        2 * math.log(base))


def yarn_find_correction_range(low_rot, high_rot, dim, base, max_position_embeddings):
    low = math.floor(yarn_find_correction_dim(low_rot, dim, base, max_position_embeddings))
    high = math.ceil(yarn_find_correction_dim(high_rot, dim, base, max_position_embeddings))
    return max(low, 0), min(high, dim - 1)


def yarn_linear_ramp(low: float, high: float, n: int) -> np.ndarray:
    if low == high:
        high += 0.001  # avoid a division by zero, as HF does
    return np.clip((np.arange(n, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def _rope_type(rope_scaling: Optional[dict]) -> Optional[str]:
    if not rope_scaling:
        return None
    kind = rope_scaling.get("type", rope_scaling.get("rope_type"))
    if kind not in ("yarn", None, "default"):
        raise ValueError(f"unsupported rope_scaling type {kind!r} (only yarn)")
    return None if kind in (None, "default") else kind


def rope_inv_freq(cfg: DeepseekConfig) -> np.ndarray:
    """Per-pair rotation frequencies [rope_dim / 2], YaRN-adjusted when configured."""
    dim, base = cfg.qk_rope_head_dim, cfg.rope_theta
    freq_extra = 1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    if _rope_type(cfg.rope_scaling) is None:
        return freq_extra
    rs = cfg.rope_scaling
    factor = float(rs["factor"])
    freq_inter = freq_extra / factor
    low, high = yarn_find_correction_range(
        rs.get("beta_fast", 32), rs.get("beta_slow", 1), dim, base,
        rs.get("original_max_position_embeddings", 4096))
    ramp = yarn_linear_ramp(low, high, dim // 2)  # 0: keep (high freq), 1: interpolate
    return freq_inter * ramp + freq_extra * (1.0 - ramp)


def rope_cos_sin_mscale(cfg: DeepseekConfig) -> float:
    """HF multiplies cos and sin by yarn_mscale(f, mscale) / yarn_mscale(f, mscale_all_dim)."""
    if _rope_type(cfg.rope_scaling) is None:
        return 1.0
    rs = cfg.rope_scaling
    factor = float(rs["factor"])
    return yarn_get_mscale(factor, rs.get("mscale", 1)) / yarn_get_mscale(
        factor, rs.get("mscale_all_dim", 0))


def attention_softmax_scale(cfg: DeepseekConfig) -> float:
    """q_head_dim^-0.5, times mscale^2 when rope_scaling has a non-zero mscale_all_dim."""
    scale = cfg.q_head_dim ** -0.5
    if cfg.rope_scaling is not None:
        mscale_all_dim = cfg.rope_scaling.get("mscale_all_dim", 0)
        if mscale_all_dim:
            m = yarn_get_mscale(float(cfg.rope_scaling["factor"]), mscale_all_dim)
            scale = scale * m * m
    return scale


def rope_tables(cfg: DeepseekConfig, num_positions: int) -> Tuple[np.ndarray, np.ndarray]:
    """cos, sin of shape [num_positions, rope_dim / 2] (already mscale-multiplied)."""
    angles = np.outer(np.arange(num_positions, dtype=np.float64), rope_inv_freq(cfg))
    mscale = rope_cos_sin_mscale(cfg)
    return np.cos(angles) * mscale, np.sin(angles) * mscale


def apply_rope_interleaved(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate pairs (x[..., 2i], x[..., 2i+1]) by angle i.  x: [T, ..., rope_dim];
    cos/sin: [T, rope_dim/2].  Output stays interleaved (HF leaves q_pe/k_pe in
    rotate-half order instead, which permutes q and k alike: same dot products)."""
    extra = (slice(None),) + (None,) * (x.ndim - 2) + (slice(None),)
    c, s = cos[extra], sin[extra]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * c - odd * s
    out[..., 1::2] = odd * c + even * s
    return out


# ----------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    variance = np.mean(x * x, axis=-1, keepdims=True)
    return weight * (x / np.sqrt(variance + eps))


def linear(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """nn.Linear without bias: weight is [out, in]."""
    return x @ weight.T


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def gated_mlp(x: np.ndarray, w: Dict[str, np.ndarray]) -> np.ndarray:
    """DeepseekV2MLP: down(silu(gate(x)) * up(x))."""
    return linear(silu(linear(x, w["gate_proj"])) * linear(x, w["up_proj"]), w["down_proj"])


def top_k_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries along the last axis (largest first)."""
    return np.argsort(-values, axis=-1, kind="stable")[..., :k]


def kth_gaps(values: np.ndarray, k: int) -> np.ndarray:
    """Per row: k-th largest minus (k+1)-th largest, i.e. how close a top-k choice is
    to a tie (inf when nothing is rejected)."""
    if k >= values.shape[-1]:
        return np.full(values.shape[:-1], np.inf)
    ordered = -np.sort(-values, axis=-1)
    gap = ordered[..., k - 1] - ordered[..., k]
    return np.where(np.isfinite(gap), gap, np.inf)  # a rejected -inf is never a tie


# ----------------------------------------------------------------------------
# MoE routing
# ----------------------------------------------------------------------------


@dataclass
class Routing:
    expert_ids: np.ndarray      # [T, top_k] int
    weights: np.ndarray         # [T, top_k] float
    margins: np.ndarray         # [T] smallest selection gap (groups, experts): diagnostics


def select_experts(choice: np.ndarray, cfg: DeepseekConfig) -> Tuple[np.ndarray, np.ndarray]:
    """Pick top_k experts per token from the selection scores `choice` [T, E].

    greedy:               plain top-k over all experts.
    group_limited_greedy: a group scores its best expert; keep the topk_group best
                          groups, then top-k among their experts.
    noaux_tc:             a group scores the sum of its two best (biased) scores;
                          same group restriction.
    Experts of rejected groups are excluded (-inf), as the official code does.
    """
    top_k = cfg.num_experts_per_tok
    method = cfg.topk_method
    margins = np.full(choice.shape[0], np.inf)
    if method == "greedy":
        masked = choice
    elif method in ("group_limited_greedy", "noaux_tc"):
        n_group, topk_group = cfg.n_group, cfg.topk_group
        tokens, experts = choice.shape
        grouped = choice.reshape(tokens, n_group, experts // n_group)
        if method == "group_limited_greedy":
            group_scores = grouped.max(axis=-1)
        else:
            group_scores = -np.sort(-grouped, axis=-1)[..., :2].sum(axis=-1)
        kept = top_k_indices(group_scores, topk_group)
        margins = np.minimum(margins, kth_gaps(group_scores, topk_group))
        group_mask = np.zeros((tokens, n_group), dtype=bool)
        np.put_along_axis(group_mask, kept, True, axis=-1)
        expert_mask = np.repeat(group_mask, experts // n_group, axis=-1)
        masked = np.where(expert_mask, choice, -np.inf)
    else:
        raise ValueError(f"unsupported topk_method {method!r}")
    margins = np.minimum(margins, kth_gaps(masked, top_k))
    return top_k_indices(masked, top_k), margins


def finish_topk_weights(weights: np.ndarray, cfg: DeepseekConfig) -> np.ndarray:
    """Renormalisation / scaling of the chosen experts' scores.

    deepseek_v2 (HF): renormalise if norm_topk_prob and top_k > 1, OTHERWISE multiply
                      by routed_scaling_factor -- never both.
    deepseek_v3 (HF): renormalise if norm_topk_prob and top_k > 1 (denominator + 1e-20),
                      THEN always multiply by routed_scaling_factor.
    """
    renormalize = cfg.norm_topk_prob and cfg.num_experts_per_tok > 1
    if renormalize:
        weights = weights / (weights.sum(axis=-1, keepdims=True) + 1e-20)
    if cfg.model_type == "deepseek_v3" or not renormalize:
        weights = weights * cfg.routed_scaling_factor
    return weights


def route_tokens(x: np.ndarray, gate_weight: np.ndarray, bias: Optional[np.ndarray],
                 cfg: DeepseekConfig) -> Routing:
    """MoEGate: router logits -> scores -> expert choice -> expert weights."""
    logits = linear(x, gate_weight)  # HF: float32 matmul; here float64
    if cfg.scoring_func == "softmax":
        scores = softmax(logits, axis=-1)
    elif cfg.scoring_func == "sigmoid":
        scores = sigmoid(logits)
    else:
        raise ValueError(f"unsupported scoring_func {cfg.scoring_func!r}")
    # The correction bias steers the choice only (noaux_tc); weights use raw scores.
    choice = scores + bias[None, :] if cfg.topk_method == "noaux_tc" else scores
    expert_ids, margins = select_experts(choice, cfg)
    weights = np.take_along_axis(scores, expert_ids, axis=-1)
    return Routing(expert_ids, finish_topk_weights(weights, cfg), margins)


# ----------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------


class Model:
    """DeepSeek V2/V3 forward pass over a whole sequence (no KV cache)."""

    def __init__(self, cfg: DeepseekConfig, tensors: Dict[str, np.ndarray],
                 dtype=np.float64):
        self.cfg = cfg
        self.dtype = np.dtype(dtype)
        self.softmax_scale = attention_softmax_scale(cfg)
        self._tensors = {k: np.ascontiguousarray(v, dtype=self.dtype) for k, v in tensors.items()
                         if np.issubdtype(v.dtype, np.floating)}
        self._validate()
        self.embed = self._t("model.embed_tokens.weight")
        self.final_norm = self._t("model.norm.weight")
        # HF ties lm_head to embed_tokens (a stored lm_head.weight is then ignored).
        self.lm_head = (self.embed if cfg.tie_word_embeddings
                        else self._t("lm_head.weight"))
        # Router diagnostics: per position of the last forward pass, the smallest gap
        # of any top-k decision (all MoE layers); and the minimum over all passes.
        self.route_margins = np.zeros(0)
        self.min_route_margin = math.inf

    # -- weights ------------------------------------------------------------
    def _t(self, name: str) -> np.ndarray:
        if name not in self._tensors:
            raise KeyError(f"checkpoint lacks tensor {name}")
        return self._tensors[name]

    def _has(self, name: str) -> bool:
        return name in self._tensors

    def _mlp_weights(self, prefix: str) -> Dict[str, np.ndarray]:
        return {p: self._t(f"{prefix}.{p}.weight") for p in ("gate_proj", "up_proj", "down_proj")}

    def _validate(self):
        """Fail early (with a clear message) on missing or mis-shaped weights."""
        cfg = self.cfg
        expect = {"model.embed_tokens.weight": (cfg.vocab_size, cfg.hidden_size),
                  "model.norm.weight": (cfg.hidden_size,)}
        if not cfg.tie_word_embeddings:
            expect["lm_head.weight"] = (cfg.vocab_size, cfg.hidden_size)
        h, nh = cfg.hidden_size, cfg.num_attention_heads
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}"
            expect[f"{p}.input_layernorm.weight"] = (h,)
            expect[f"{p}.post_attention_layernorm.weight"] = (h,)
            a = f"{p}.self_attn"
            if cfg.q_lora_rank is None:
                expect[f"{a}.q_proj.weight"] = (nh * cfg.q_head_dim, h)
            else:
                expect[f"{a}.q_a_proj.weight"] = (cfg.q_lora_rank, h)
                expect[f"{a}.q_a_layernorm.weight"] = (cfg.q_lora_rank,)
                expect[f"{a}.q_b_proj.weight"] = (nh * cfg.q_head_dim, cfg.q_lora_rank)
            expect[f"{a}.kv_a_proj_with_mqa.weight"] = (cfg.kv_lora_rank + cfg.qk_rope_head_dim, h)
            expect[f"{a}.kv_a_layernorm.weight"] = (cfg.kv_lora_rank,)
            expect[f"{a}.kv_b_proj.weight"] = (nh * (cfg.qk_nope_head_dim + cfg.v_head_dim),
                                               cfg.kv_lora_rank)
            expect[f"{a}.o_proj.weight"] = (h, nh * cfg.v_head_dim)
            m = f"{p}.mlp"
            if cfg.is_moe_layer(i):
                e, mi = cfg.n_routed_experts, cfg.moe_intermediate_size
                expect[f"{m}.gate.weight"] = (e, h)
                if cfg.topk_method == "noaux_tc":
                    expect[f"{m}.gate.e_score_correction_bias"] = (e,)
                for j in range(e):
                    expect.update(_mlp_shapes(f"{m}.experts.{j}", h, mi))
                if cfg.n_shared_experts:
                    expect.update(_mlp_shapes(f"{m}.shared_experts", h,
                                              mi * cfg.n_shared_experts))
            else:
                expect.update(_mlp_shapes(m, h, cfg.intermediate_size))
        for name, shape in expect.items():
            if name not in self._tensors:
                raise KeyError(f"checkpoint lacks tensor {name}")
            if tuple(self._tensors[name].shape) != shape:
                raise ValueError(f"{name}: shape {self._tensors[name].shape}, expected {shape}")
        self._validate_routing()

    def _validate_routing(self):
        cfg = self.cfg
        if cfg.n_routed_experts is None:
            return
        if cfg.num_experts_per_tok is None or cfg.num_experts_per_tok < 1:
            raise ValueError("MoE config needs num_experts_per_tok >= 1")
        if cfg.topk_method in ("group_limited_greedy", "noaux_tc"):
            if not cfg.n_group or cfg.n_routed_experts % cfg.n_group:
                raise ValueError(f"n_group {cfg.n_group} must divide n_routed_experts")
            if not 1 <= cfg.topk_group <= cfg.n_group:
                raise ValueError("need 1 <= topk_group <= n_group")
            per_group = cfg.n_routed_experts // cfg.n_group
            if cfg.num_experts_per_tok > cfg.topk_group * per_group:
                raise ValueError("num_experts_per_tok exceeds the experts of the kept groups")
            if cfg.topk_method == "noaux_tc" and per_group < 2:
                raise ValueError("noaux_tc needs >= 2 experts per group (top-2 group score)")
        elif cfg.num_experts_per_tok > cfg.n_routed_experts:
            raise ValueError("num_experts_per_tok > n_routed_experts")

    # -- layers -------------------------------------------------------------
    def attention(self, i: int, x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        """Multi-head latent attention over the whole sequence, causal.  x: [T, hidden]."""
        cfg, p = self.cfg, f"model.layers.{i}.self_attn"
        T, nh = x.shape[0], cfg.num_attention_heads
        dn, dr, dv, r = cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim, cfg.kv_lora_rank

        if cfg.q_lora_rank is None:
            q = linear(x, self._t(f"{p}.q_proj.weight"))
        else:
            q_latent = rms_norm(linear(x, self._t(f"{p}.q_a_proj.weight")),
                                self._t(f"{p}.q_a_layernorm.weight"), cfg.rms_norm_eps)
            q = linear(q_latent, self._t(f"{p}.q_b_proj.weight"))
        q = q.reshape(T, nh, dn + dr)                       # per head: [nope | rope]
        q_nope, q_pe = q[..., :dn], q[..., dn:]

        compressed = linear(x, self._t(f"{p}.kv_a_proj_with_mqa.weight"))
        kv_latent, k_pe = compressed[:, :r], compressed[:, r:]   # k_pe: [T, dr], one shared head
        kv_latent = rms_norm(kv_latent, self._t(f"{p}.kv_a_layernorm.weight"), cfg.rms_norm_eps)
        kv = linear(kv_latent, self._t(f"{p}.kv_b_proj.weight")).reshape(T, nh, dn + dv)
        k_nope, v = kv[..., :dn], kv[..., dn:]              # per head: [nope | v]

        q_pe = apply_rope_interleaved(q_pe, cos, sin)
        k_pe = apply_rope_interleaved(k_pe, cos, sin)

        scores = (np.einsum("thd,shd->hts", q_nope, k_nope)
                  + np.einsum("thd,sd->hts", q_pe, k_pe)) * self.softmax_scale
        causal = np.triu(np.ones((T, T), dtype=bool), k=1)  # key s > query t is hidden
        scores = np.where(causal[None], -np.inf, scores)
        probs = softmax(scores, axis=-1)
        out = np.einsum("hts,shd->thd", probs, v).reshape(T, nh * dv)
        return linear(out, self._t(f"{p}.o_proj.weight"))

    def moe(self, i: int, x: np.ndarray) -> np.ndarray:
        """Routed experts (weighted sum over each token's top-k) plus shared experts."""
        cfg, p = self.cfg, f"model.layers.{i}.mlp"
        bias_name = f"{p}.gate.e_score_correction_bias"
        bias = self._t(bias_name) if cfg.topk_method == "noaux_tc" else None
        routing = route_tokens(x, self._t(f"{p}.gate.weight"), bias, cfg)
        self.route_margins = np.minimum(self.route_margins, routing.margins)
        self.min_route_margin = min(self.min_route_margin, float(np.min(routing.margins)))
        out = np.zeros_like(x)
        for expert in np.unique(routing.expert_ids):
            tokens, slots = np.nonzero(routing.expert_ids == expert)
            y = gated_mlp(x[tokens], self._mlp_weights(f"{p}.experts.{expert}"))
            out[tokens] += routing.weights[tokens, slots][:, None] * y
        if cfg.n_shared_experts:  # None or 0: no shared experts
            out = out + gated_mlp(x, self._mlp_weights(f"{p}.shared_experts"))
        return out

    def decoder_layer(self, i: int, x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        cfg, p = self.cfg, f"model.layers.{i}"
        h = rms_norm(x, self._t(f"{p}.input_layernorm.weight"), cfg.rms_norm_eps)
        x = x + self.attention(i, h, cos, sin)
        h = rms_norm(x, self._t(f"{p}.post_attention_layernorm.weight"), cfg.rms_norm_eps)
        if cfg.is_moe_layer(i):
            return x + self.moe(i, h)
        return x + gated_mlp(h, self._mlp_weights(f"{p}.mlp"))

    # -- public API -----------------------------------------------------------
    def prefill_logits(self, ids) -> np.ndarray:
        """Logits at every position of one causal pass over `ids`: [T, vocab]."""
        ids = np.asarray(list(ids), dtype=np.int64)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("ids must be a non-empty 1-D sequence")
        if ids.min() < 0 or ids.max() >= self.cfg.vocab_size:
            raise ValueError(f"token id out of range [0, {self.cfg.vocab_size})")
        cos, sin = (t.astype(self.dtype) for t in rope_tables(self.cfg, ids.size))
        self.route_margins = np.full(ids.size, np.inf)
        x = self.embed[ids]
        for i in range(self.cfg.num_hidden_layers):  # an MTP layer (index L) is never run
            x = self.decoder_layer(i, x, cos, sin)
        x = rms_norm(x, self.final_norm, self.cfg.rms_norm_eps)
        return linear(x, self.lm_head)

    def greedy_with_margins(self, ids, n: int) -> Tuple[List[int], List[float]]:
        """Greedy continuation by re-running the full prefill each step.  Also returns the
        top-1 margin (best minus second-best logit) at each of the n decisions."""
        seq, tokens, margins = list(ids), [], []
        for _ in range(n):
            last = self.prefill_logits(seq)[-1]
            best = int(np.argmax(last))
            margins.append(float(last[best] - np.max(np.delete(last, best)))
                           if last.size > 1 else math.inf)
            tokens.append(best)
            seq.append(best)
        return tokens, margins

    def greedy(self, ids, n: int) -> List[int]:
        return self.greedy_with_margins(ids, n)[0]


def _mlp_shapes(prefix: str, hidden: int, inter: int) -> Dict[str, tuple]:
    return {f"{prefix}.gate_proj.weight": (inter, hidden),
            f"{prefix}.up_proj.weight": (inter, hidden),
            f"{prefix}.down_proj.weight": (hidden, inter)}


def load_config(checkpoint_dir: str) -> DeepseekConfig:
    with open(os.path.join(checkpoint_dir, "config.json")) as f:
        return parse_config(json.load(f))


def load_checkpoint(checkpoint_dir: str, dtype=np.float64) -> Model:
    """Load config.json + weights (FP8 dequantised).  dtype: compute precision."""
    cfg = load_config(checkpoint_dir)
    tensors = load_tensors_dequantized(checkpoint_dir, cfg.fp8_block)
    return Model(cfg, tensors, dtype=dtype)


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="HF checkpoint directory")
    ap.add_argument("--ids", required=True, help="comma-separated prompt token ids")
    ap.add_argument("--out", help="write the prefill logits [T, vocab] (float64) here")
    ap.add_argument("--greedy", type=int, default=0, help="greedy-decode this many tokens")
    args = ap.parse_args(argv)
    ids = [int(t) for t in args.ids.split(",") if t.strip()]
    model = load_checkpoint(args.checkpoint)
    logits = model.prefill_logits(ids)
    if args.out:
        np.save(args.out, logits)
    result = {"prompt_len": len(ids), "vocab_size": int(logits.shape[1]),
              "last_argmax": int(np.argmax(logits[-1]))}
    if args.greedy:
        result["generated_ids"] = model.greedy(ids, args.greedy)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
