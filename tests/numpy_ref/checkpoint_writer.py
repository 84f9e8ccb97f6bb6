#!/usr/bin/python3
"""Write random HF-format DeepSeek checkpoints (for the parity self-check).

This is *not* dsrt's `synth`; it is the test suite's own writer, used to check the
parity driver and the reference loader without dsrt.  It writes BF16 weights
(optionally FP8 E4M3 with 128x128 block scales, as DeepSeek-V3 ships), F32
e_score_correction_bias, optional sharding with model.safetensors.index.json, and
an MTP layer when num_nextn_predict_layers is set.

Initialisation keeps logits O(1): linear weights ~ N(0, 1/fan_in), embeddings
~ N(0, 1) (N(0, 1/hidden) when tied to the lm_head), norm weights ~ 1 + N(0, 0.1^2), router bias ~ N(0, 0.05^2).
"""

import json
import os
import struct
from typing import Dict, List, Tuple

import numpy as np

from deepseek_ref import FP8_E4M3_TABLE

FP8_MAX = 448.0

# ----------------------------------------------------------------------------
# encoders
# ----------------------------------------------------------------------------


def round_to_bf16(x: np.ndarray) -> np.ndarray:
    """Round to the nearest bfloat16 (ties to even); returns the uint16 bit patterns."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = 0x7FFF + ((bits >> 16) & 1)
    return ((bits + rounding) >> 16).astype(np.uint16)


def bf16_values(x: np.ndarray) -> np.ndarray:
    """x rounded to bfloat16, as float64 (what a reader of the BF16 file will see)."""
    return (round_to_bf16(x).astype(np.uint32) << 16).view(np.float32).astype(np.float64)


_FP8_ORDER = np.argsort(FP8_E4M3_TABLE[:0x7F])  # non-negative finite codes 0x00..0x7e
_FP8_SORTED = FP8_E4M3_TABLE[:0x7F][_FP8_ORDER]


def encode_fp8_e4m3(x: np.ndarray) -> np.ndarray:
    """Nearest float8 e4m3fn code (saturating at +-448)."""
    mag = np.minimum(np.abs(x), FP8_MAX).ravel()
    hi = np.clip(np.searchsorted(_FP8_SORTED, mag), 1, len(_FP8_SORTED) - 1)
    lo = hi - 1
    pick = np.where(mag - _FP8_SORTED[lo] <= _FP8_SORTED[hi] - mag, lo, hi)
    codes = _FP8_ORDER[pick].astype(np.uint8)
    codes = np.where(x.ravel() < 0, codes | 0x80, codes).astype(np.uint8)
    return codes.reshape(x.shape)


def quantize_fp8_blockwise(w: np.ndarray, block: int = 128) -> Tuple[np.ndarray, np.ndarray]:
    """(fp8 codes [out, in], float32 scale_inv [ceil(out/b), ceil(in/b)])."""
    rows, cols = w.shape
    br, bc = -(-rows // block), -(-cols // block)
    scale_inv = np.ones((br, bc), dtype=np.float32)
    for i in range(br):
        for j in range(bc):
            amax = np.max(np.abs(w[i * block:(i + 1) * block, j * block:(j + 1) * block]))
            if amax > 0:
                scale_inv[i, j] = np.float32(amax / FP8_MAX)
    full = np.repeat(np.repeat(scale_inv.astype(np.float64), block, 0), block, 1)[:rows, :cols]
    return encode_fp8_e4m3(w / full), scale_inv


_ENCODE = {
    "F32": lambda a: np.ascontiguousarray(a, dtype="<f4").tobytes(),
    "BF16": lambda a: round_to_bf16(a).astype("<u2").tobytes(),
    "F16": lambda a: np.ascontiguousarray(a, dtype="<f2").tobytes(),
    "F8_E4M3": lambda a: np.ascontiguousarray(a, dtype=np.uint8).tobytes(),  # already codes
}


def write_safetensors(path: str, tensors: Dict[str, Tuple[str, np.ndarray]]) -> None:
    """tensors: name -> (safetensors dtype, array).  F8_E4M3 arrays hold uint8 codes."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        dtype, array = tensors[name]
        blob = _ENCODE[dtype](array)
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # pad to an 8-byte boundary
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)


# ----------------------------------------------------------------------------
# random weights
# ----------------------------------------------------------------------------


def _is_moe_layer(cfg: dict, i: int) -> bool:
    return (cfg.get("n_routed_experts") is not None and i >= cfg.get("first_k_dense_replace", 0)
            and i % cfg.get("moe_layer_freq", 1) == 0)


def tensor_shapes(cfg: dict) -> List[Tuple[str, tuple, str]]:
    """(name, shape, kind) of every tensor; kind: embed|norm|linear|gate|bias|head."""
    h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    r, qr, vocab = cfg["kv_lora_rank"], cfg["q_lora_rank"], cfg["vocab_size"]
    out = [("model.embed_tokens.weight", (vocab, h), "embed"), ("model.norm.weight", (h,), "norm")]
    if not cfg.get("tie_word_embeddings"):
        out.append(("lm_head.weight", (vocab, h), "head"))

    def mlp(prefix, inter):
        return [(f"{prefix}.gate_proj.weight", (inter, h), "linear"),
                (f"{prefix}.up_proj.weight", (inter, h), "linear"),
                (f"{prefix}.down_proj.weight", (h, inter), "linear")]

    def layer(i, moe):
        p, a = f"model.layers.{i}", f"model.layers.{i}.self_attn"
        t = [(f"{p}.input_layernorm.weight", (h,), "norm"),
             (f"{p}.post_attention_layernorm.weight", (h,), "norm")]
        if qr is None:
            t.append((f"{a}.q_proj.weight", (nh * (dn + dr), h), "linear"))
        else:
            t += [(f"{a}.q_a_proj.weight", (qr, h), "linear"),
                  (f"{a}.q_a_layernorm.weight", (qr,), "norm"),
                  (f"{a}.q_b_proj.weight", (nh * (dn + dr), qr), "linear")]
        t += [(f"{a}.kv_a_proj_with_mqa.weight", (r + dr, h), "linear"),
              (f"{a}.kv_a_layernorm.weight", (r,), "norm"),
              (f"{a}.kv_b_proj.weight", (nh * (dn + dv), r), "linear"),
              (f"{a}.o_proj.weight", (h, nh * dv), "linear")]
        if moe:
            e, mi = cfg["n_routed_experts"], cfg["moe_intermediate_size"]
            t.append((f"{p}.mlp.gate.weight", (e, h), "gate"))
            if cfg.get("topk_method") == "noaux_tc":
                t.append((f"{p}.mlp.gate.e_score_correction_bias", (e,), "bias"))
            for j in range(e):
                t += mlp(f"{p}.mlp.experts.{j}", mi)
            if cfg.get("n_shared_experts"):
                t += mlp(f"{p}.mlp.shared_experts", mi * cfg["n_shared_experts"])
        else:
            t += mlp(f"{p}.mlp", cfg["intermediate_size"])
        return t

    n_layers = cfg["num_hidden_layers"]
    for i in range(n_layers):
        out += layer(i, _is_moe_layer(cfg, i))
    for k in range(cfg.get("num_nextn_predict_layers") or 0):  # MTP layers: never run
        i = n_layers + k
        p = f"model.layers.{i}"
        out += [(f"{p}.embed_tokens.weight", (vocab, h), "embed"),
                (f"{p}.enorm.weight", (h,), "norm"), (f"{p}.hnorm.weight", (h,), "norm"),
                (f"{p}.eh_proj.weight", (h, 2 * h), "head"),
                (f"{p}.shared_head.norm.weight", (h,), "norm"),
                (f"{p}.shared_head.head.weight", (vocab, h), "head")]
        out += layer(i, cfg.get("n_routed_experts") is not None)
    return out


def random_tensors(cfg: dict, seed: int) -> Dict[str, Tuple[str, np.ndarray]]:
    """name -> (kind, float64 values)."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape, kind in tensor_shapes(cfg):
        if kind == "embed":  # tied: also the lm_head, so scale it like one
            value = rng.standard_normal(shape)
            if cfg.get("tie_word_embeddings"):
                value /= np.sqrt(shape[1])
        elif kind == "norm":
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif kind == "bias":
            value = 0.05 * rng.standard_normal(shape)
        elif kind == "gate":  # a wider spread than 1/fan_in keeps routing decisive
            value = 2.0 * rng.standard_normal(shape) / np.sqrt(shape[1])
        else:  # linear, head
            value = rng.standard_normal(shape) / np.sqrt(shape[1])
        tensors[name] = (kind, value)
    return tensors


def write_checkpoint(cfg: dict, seed: int, out_dir: str, fp8: bool = False,
                     shards: int = 1) -> None:
    """A complete random checkpoint: config.json + safetensors (+ index when sharded).

    fp8=True stores every decoder-layer linear weight as F8_E4M3 with an F32
    `<name>_scale_inv` of 128x128 blocks (and adds quantization_config), as V3 does.
    """
    os.makedirs(out_dir, exist_ok=True)
    cfg = dict(cfg)
    if fp8:
        cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3",
                                      "quant_method": "fp8", "weight_block_size": [128, 128]}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    encoded = {}
    for name, (kind, value) in random_tensors(cfg, seed).items():
        if kind == "bias":
            encoded[name] = ("F32", value)
        elif fp8 and kind == "linear":
            codes, scale_inv = quantize_fp8_blockwise(value)
            encoded[name] = ("F8_E4M3", codes)
            encoded[name + "_scale_inv"] = ("F32", scale_inv)
        else:
            encoded[name] = ("BF16", value)

    names = sorted(encoded)
    if shards <= 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), encoded)
        return
    # Deal tensors round-robin so a weight and its scale_inv may land in different shards.
    files = [f"model-{k + 1:05d}-of-{shards:05d}.safetensors" for k in range(shards)]
    weight_map = {name: files[idx % shards] for idx, name in enumerate(names)}
    for fname in files:
        write_safetensors(os.path.join(out_dir, fname),
                          {n: encoded[n] for n in names if weight_map[n] == fname})
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)
