#!/usr/bin/python3
"""Random small but valid DeepSeek V2/V3 HF config.json dicts for parity testing.

make_config(seed) is deterministic per seed.  The categorical features that matter
for semantics are scheduled from the seed so that seeds 0..19 jointly cover them:

  routing (seed % 5):  softmax+greedy, softmax+group_limited_greedy, sigmoid+greedy,
                       sigmoid+group_limited_greedy, sigmoid+noaux_tc
  model_type ((seed // 5) % 2): deepseek_v2 / deepseek_v3 (top-k weight rule differs)
  norm_topk_prob ((seed // 10) % 2 == 0)
      -> every (routing, model_type, norm_topk_prob) triple occurs once in 0..19
  q_lora_rank (seed % 2): null (q_proj) / set (q_a_proj, q_a_layernorm, q_b_proj)
  rope_scaling (seed % 4): null / YaRN mscale == mscale_all_dim / YaRN with only
      mscale (cos/sin scaled by yarn_mscale, no softmax mscale) / YaRN with other
      mscale combinations (mscale_all_dim only, 0, or both different)
  layer kinds: at least one MoE layer always; dense+MoE mixes through
      first_k_dense_replace 0..2 and moe_layer_freq 1..2
  group methods in seeds 0..19 always keep fewer groups than n_group
  seed % 20 == 10 spells greedy "gready" (HF V2's default spelling)
Everything else (dims, factors, eps, tie_word_embeddings, shared experts...) is drawn
from a seeded RNG.

    /usr/bin/python3 tests/numpy_ref/random_configs.py --count 20   # print a summary
"""

import argparse
import json
import math
import random
import sys

ROUTINGS = [
    ("softmax", "greedy"),
    ("softmax", "group_limited_greedy"),
    ("sigmoid", "greedy"),
    ("sigmoid", "group_limited_greedy"),
    ("sigmoid", "noaux_tc"),
]

YARN_MODES = ["none", "equal", "mscale_only", "other"]


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _routing_fields(rng, scoring, method, model_type, norm_topk_prob, restrict_groups,
                    force_gready):
    """Experts, groups and top-k consistent with the routing method."""
    fields = {"scoring_func": scoring, "topk_method": method}
    if method == "greedy":
        n_experts = rng.choice([2, 3, 4, 6, 8, 12, 16])
        # n_group/topk_group are ignored by greedy; write what V2-Lite writes.
        n_group = topk_group = 1
        max_k = n_experts
        if model_type == "deepseek_v2" and (force_gready or rng.random() < 0.3):
            fields["topk_method"] = "gready"  # HF V2's spelling of greedy
    else:
        while True:
            n_experts = rng.choice([4, 6, 8, 12, 16, 24, 32])
            groups = [g for g in _divisors(n_experts) if g > 1
                      and (method != "noaux_tc" or n_experts // g >= 2)]
            if groups:
                break
        n_group = rng.choice(groups)
        # A real group restriction (topk_group < n_group), or now and then all groups.
        restrict = restrict_groups or rng.random() < 0.9
        topk_group = rng.randint(1, n_group - 1) if restrict else n_group
        max_k = topk_group * (n_experts // n_group)
    # HF applies norm_topk_prob only when top_k > 1; for deepseek_v3 the golden
    # README's wording does not mention that condition, so keep v3+norm at top_k >= 2.
    min_k = 2 if (model_type == "deepseek_v3" and norm_topk_prob) else 1
    max_k = max(min(max_k, 8), min_k)
    if max_k > min_k and rng.random() < 0.8:
        max_k -= 1  # usually leave a choice among the eligible experts
    fields.update(
        n_routed_experts=n_experts,
        n_group=n_group,
        topk_group=topk_group,
        num_experts_per_tok=rng.randint(min_k, max_k),
        norm_topk_prob=norm_topk_prob,
        routed_scaling_factor=rng.choice([1.0, 2.5, 16.0, round(rng.uniform(0.5, 3.0), 3)]),
    )
    return fields


def _rope_scaling(rng, mode):
    if mode == "none":
        return None
    factor = rng.choice([2, 4, 8, 16, 40, round(rng.uniform(1.5, 64.0), 2)])
    rs = {"type": "yarn", "factor": factor,
          "original_max_position_embeddings": rng.choice([8, 16, 24, 32, 64, 4096]),
          "beta_fast": rng.choice([32, 16, 64]),
          "beta_slow": rng.choice([1, 1, 2, 0.5])}
    if mode == "equal":  # the released configs: cos/sin factor 1, softmax mscale m^2
        m = rng.choice([0.707, 1.0, round(rng.uniform(0.3, 1.5), 3)])
        rs["mscale"] = rs["mscale_all_dim"] = m
    elif mode == "mscale_only":  # no softmax mscale; cos/sin x yarn_mscale(f, mscale)
        rs["mscale"] = rng.choice([0.707, 1.0])
    else:
        variant = rng.choice(["all_dim_only", "zero_all_dim", "different", "neither"])
        if variant == "all_dim_only":      # HF default mscale=1 for cos/sin
            rs["mscale_all_dim"] = rng.choice([0.707, 1.0])
        elif variant == "zero_all_dim":
            rs["mscale"] = 1.0
            rs["mscale_all_dim"] = 0
        elif variant == "different":
            rs["mscale"] = round(rng.uniform(0.5, 1.2), 3)
            rs["mscale_all_dim"] = round(rng.uniform(0.5, 1.2), 3)
        # "neither": cos/sin x (0.1 ln f + 1), softmax scale unchanged
    return rs


def _layer_plan(rng, moe):
    """num_hidden_layers, first_k_dense_replace, moe_layer_freq with >= 1 MoE layer."""
    layers = rng.randint(1, 4)
    if not moe:
        return layers, rng.randint(0, 2), 1
    first_k = rng.randint(0, min(2, layers - 1))
    freq = rng.choice([1, 1, 2])
    if not any(i >= first_k and i % freq == 0 for i in range(layers)):
        freq = 1
    return layers, first_k, freq


def make_config(seed: int) -> dict:
    rng = random.Random(1000003 * seed + 17)
    scoring, method = ROUTINGS[seed % 5]
    model_type = ["deepseek_v2", "deepseek_v3"][(seed // 5) % 2]
    norm_topk_prob = (seed // 10) % 2 == 0
    yarn_mode = YARN_MODES[seed % 4]
    use_q_lora = seed % 2 == 1
    # A fully dense model (n_routed_experts null) now and then, never in seeds 0..19.
    moe = seed < 20 or rng.random() > 0.1

    heads = rng.randint(1, 6)
    hidden = rng.choice(range(32, 129, 8))
    layers, first_k, freq = _layer_plan(rng, moe)
    rope_scaling = _rope_scaling(rng, yarn_mode)
    if rope_scaling is None:
        max_pos = rng.choice([64, 128, 512, 2048])
    else:
        max_pos = max(128, int(rope_scaling["original_max_position_embeddings"]
                               * rope_scaling["factor"]))

    cfg = {
        "architectures": ["DeepseekV3ForCausalLM" if model_type == "deepseek_v3"
                          else "DeepseekV2ForCausalLM"],
        "model_type": model_type,
        "vocab_size": rng.randint(256, 1024),
        "hidden_size": hidden,
        "intermediate_size": rng.choice(range(32, 257, 16)),
        "moe_intermediate_size": rng.choice(range(8, 65, 8)),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "n_shared_experts": rng.choice([None, 0, 1, 1, 2]),
        "kv_lora_rank": rng.choice([16, 24, 32, 48, 64]),
        "q_lora_rank": rng.choice([16, 24, 32, 48, 96]) if use_q_lora else None,
        "qk_rope_head_dim": rng.choice([2, 4, 6, 8, 16, 32]),
        "qk_nope_head_dim": rng.choice([8, 12, 16, 32]),
        "v_head_dim": rng.choice([8, 16, 24, 32]),
        "moe_layer_freq": freq,
        "first_k_dense_replace": first_k,
        "hidden_act": "silu",
        "max_position_embeddings": max_pos,
        "rope_theta": rng.choice([10000.0, 10000.0, 50000.0, 1000.0]),
        "rope_scaling": rope_scaling,
        "rms_norm_eps": rng.choice([1e-6, 1e-6, 1e-5]),
        "tie_word_embeddings": rng.random() < 0.3,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "torch_dtype": "bfloat16",
    }
    if moe:
        cfg.update(_routing_fields(rng, scoring, method, model_type, norm_topk_prob,
                                   restrict_groups=seed < 20, force_gready=seed % 20 == 10))
        cfg.update(aux_loss_alpha=0.001, seq_aux=True)
    else:
        cfg.update(n_routed_experts=None, n_shared_experts=None, num_experts_per_tok=None,
                   scoring_func=scoring, topk_method=method, n_group=None, topk_group=None,
                   norm_topk_prob=norm_topk_prob, routed_scaling_factor=1.0)
    if model_type == "deepseek_v3":
        cfg.update(num_nextn_predict_layers=rng.choice([0, 1]), ep_size=1)
    return cfg


# ----------------------------------------------------------------------------
# summaries (used by parity_test.py and the CLI below)
# ----------------------------------------------------------------------------


def moe_layers(cfg: dict):
    if cfg.get("n_routed_experts") is None:
        return []
    return [i for i in range(cfg["num_hidden_layers"])
            if i >= cfg.get("first_k_dense_replace", 0) and i % cfg.get("moe_layer_freq", 1) == 0]


def yarn_kind(cfg: dict) -> str:
    rs = cfg.get("rope_scaling")
    if not rs:
        return "rope"
    ms, mad = rs.get("mscale", 1), rs.get("mscale_all_dim", 0)
    f = rs["factor"]
    cos_sin = (0.1 * ms * math.log(f) + 1) / ((0.1 * mad * math.log(f) + 1) if mad else 1)
    tag = f"yarn{f:g}"
    if mad:
        tag += f"+m{mad:g}"
    if abs(cos_sin - 1) > 1e-12:
        tag += f"+cs{cos_sin:.3f}"
    return tag


def summarize(cfg: dict) -> str:
    """One-line variant summary, e.g. 'v3 sigmoid/noaux_tc k4/16 g2of4 norm rsf2.5 ...'."""
    mt = "v3" if cfg["model_type"] == "deepseek_v3" else "v2"
    layers = cfg["num_hidden_layers"]
    moe = moe_layers(cfg)
    kinds = "".join("M" if i in moe else "D" for i in range(layers))
    parts = [mt, f"L{layers}:{kinds}"]
    if moe:
        route = f"{cfg['scoring_func']}/{cfg['topk_method']} k{cfg['num_experts_per_tok']}/" \
                f"{cfg['n_routed_experts']}"
        if cfg["topk_method"] in ("group_limited_greedy", "noaux_tc"):
            route += f" g{cfg['topk_group']}of{cfg['n_group']}"
        parts += [route, "norm" if cfg["norm_topk_prob"] else "nonorm",
                  f"rsf{cfg['routed_scaling_factor']:g}", f"sh{cfg.get('n_shared_experts')}"]
    parts.append("qlora" if cfg["q_lora_rank"] is not None else "q_proj")
    parts.append(yarn_kind(cfg))
    if cfg["tie_word_embeddings"]:
        parts.append("tied")
    parts.append(f"h{cfg['hidden_size']}x{cfg['num_attention_heads']}"
                 f" n{cfg['qk_nope_head_dim']}r{cfg['qk_rope_head_dim']}v{cfg['v_head_dim']}")
    return " ".join(parts)


def coverage(configs) -> dict:
    """Which semantic variants a list of configs exercises (name -> count)."""
    cov = {}

    def add(key):
        cov[key] = cov.get(key, 0) + 1

    for c in configs:
        moe = moe_layers(c)
        dense = [i for i in range(c["num_hidden_layers"]) if i not in moe]
        if moe:
            method = "greedy" if c["topk_method"] == "gready" else c["topk_method"]
            add(f"{c['scoring_func']}+{method}")
            add(f"{c['model_type']}+norm_topk_prob={c['norm_topk_prob']}")
            add("shared experts" if c.get("n_shared_experts") else "no shared experts")
            if c["topk_method"] == "gready":
                add("'gready' spelling")
            if method != "greedy" and c["topk_group"] < c["n_group"]:
                add(f"{method} with topk_group < n_group")
            if c["num_experts_per_tok"] == 1:
                add("top_k 1")
        add("dense+MoE layers" if moe and dense else ("MoE only" if moe else "dense only"))
        if c.get("moe_layer_freq", 1) > 1 and moe:
            add("moe_layer_freq 2")
        add("q_lora" if c["q_lora_rank"] is not None else "q_proj")
        kind = yarn_kind(c)
        add("yarn" if kind != "rope" else "plain rope")
        if "+cs" in kind:
            add("yarn cos/sin mscale != 1")
        if c.get("rope_scaling") and not c["rope_scaling"].get("mscale_all_dim"):
            add("yarn without softmax mscale")
        if c["tie_word_embeddings"]:
            add("tied embeddings")
        if c["v_head_dim"] != c["qk_nope_head_dim"]:
            add("v_head_dim != qk_nope_head_dim")
        if c.get("num_nextn_predict_layers"):
            add("MTP layer in config")
    return cov


REQUIRED_COVERAGE = [
    "softmax+greedy", "softmax+group_limited_greedy", "sigmoid+greedy",
    "sigmoid+group_limited_greedy", "sigmoid+noaux_tc",
    "deepseek_v2+norm_topk_prob=True", "deepseek_v2+norm_topk_prob=False",
    "deepseek_v3+norm_topk_prob=True", "deepseek_v3+norm_topk_prob=False",
    "q_lora", "q_proj", "dense+MoE layers", "yarn", "plain rope",
    "yarn cos/sin mscale != 1", "shared experts", "no shared experts",
    "group_limited_greedy with topk_group < n_group", "noaux_tc with topk_group < n_group",
    "'gready' spelling", "tied embeddings", "v_head_dim != qk_nope_head_dim",
    "yarn without softmax mscale", "moe_layer_freq 2",
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="print random configs and their coverage")
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--seed-base", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the full config dicts")
    args = ap.parse_args(argv)
    configs = [make_config(s) for s in range(args.seed_base, args.seed_base + args.count)]
    for s, c in zip(range(args.seed_base, args.seed_base + args.count), configs):
        print(json.dumps(c) if args.json else f"seed {s:3d}: {summarize(c)}")
    cov = coverage(configs)
    print("coverage:")
    for k in sorted(cov):
        print(f"  {cov[k]:3d}  {k}")
    missing = [k for k in REQUIRED_COVERAGE if k not in cov]
    if missing:
        print(f"MISSING coverage: {missing}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
