#!/usr/bin/python3
"""A stand-in for the dsrt CLI, for `parity_test.py --self-check`.

It speaks the three subcommands the parity driver uses:

    fake_dsrt.py synth --config CFG --seed N --output DIR
    fake_dsrt.py build --checkpoint DIR --output ENGINE --dtype f32
    fake_dsrt.py run ENGINE --ids 1,2,3 --max-new-tokens 8 --greedy --json --dump-logits L.npy

`synth` writes a random checkpoint with checkpoint_writer (BF16; FP8 block-quantised
for some deepseek_v3 seeds; two shards for odd seeds).  `build` records the
checkpoint path.  `run` evaluates the NumPy reference in *float32* (a different
precision path from the float64 oracle) and greedy-decodes.

Environment knobs, so the self-check can prove the driver catches real bugs:
  DSRT_FAKE_BUG   none | rotate_half | no_router_bias | v2_norm_and_scale |
                  logit_noise | crash
  DSRT_FAKE_DUMP  prompt (default: logits [T, vocab]) | full (prompt + generated
                  positions, [T + n - 1, vocab]) | last ([vocab])
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checkpoint_writer  # noqa: E402
import deepseek_ref  # noqa: E402

BUGS = ("none", "rotate_half", "no_router_bias", "v2_norm_and_scale", "logit_noise", "crash")


def _inject_bug(bug: str) -> None:
    """Monkey-patch the reference module with one deliberate semantic error."""
    if bug == "rotate_half":  # pair x[i] with x[i + d/2] instead of x[2i], x[2i+1]
        def rope_rotate_half(x, cos, sin):
            extra = (slice(None),) + (None,) * (x.ndim - 2) + (slice(None),)
            c, s = cos[extra], sin[extra]
            half = x.shape[-1] // 2
            a, b = x[..., :half], x[..., half:]
            return np.concatenate([a * c - b * s, b * c + a * s], axis=-1)
        deepseek_ref.apply_rope_interleaved = rope_rotate_half
    elif bug == "no_router_bias":
        original = deepseek_ref.route_tokens
        deepseek_ref.route_tokens = lambda x, g, bias, cfg: original(
            x, g, None if bias is None else np.zeros_like(bias), cfg)
    elif bug == "v2_norm_and_scale":  # renormalise AND scale for deepseek_v2 too
        def both(weights, cfg):
            if cfg.norm_topk_prob and cfg.num_experts_per_tok > 1:
                weights = weights / (weights.sum(axis=-1, keepdims=True) + 1e-20)
            return weights * cfg.routed_scaling_factor
        deepseek_ref.finish_topk_weights = both
    elif bug not in ("none", "logit_noise", "crash"):
        raise SystemExit(f"unknown DSRT_FAKE_BUG {bug!r}")


def cmd_synth(args) -> int:
    with open(args.config) as f:
        cfg = json.load(f)
    fp8 = cfg["model_type"] == "deepseek_v3" and args.seed % 3 == 0
    checkpoint_writer.write_checkpoint(cfg, args.seed, args.output, fp8=fp8,
                                       shards=2 if args.seed % 2 else 1)
    print(f"synth: wrote {args.output} (fp8={fp8})", file=sys.stderr)
    return 0


def cmd_build(args) -> int:
    deepseek_ref.load_config(args.checkpoint)  # fail early on a bad config
    with open(args.output, "w") as f:
        json.dump({"checkpoint": os.path.abspath(args.checkpoint), "dtype": args.dtype}, f)
    return 0


def cmd_run(args) -> int:
    bug = os.environ.get("DSRT_FAKE_BUG", "none")
    if bug == "crash":
        print("fake_dsrt: simulated crash", file=sys.stderr)
        return 3
    _inject_bug(bug)
    with open(args.engine) as f:
        engine = json.load(f)
    dtype = {"f32": np.float32, "f64": np.float64}[engine["dtype"]]
    model = deepseek_ref.load_checkpoint(engine["checkpoint"], dtype=dtype)
    ids = [int(t) for t in args.ids.split(",")]
    n = args.max_new_tokens
    generated = model.greedy(ids, n) if n > 0 else []
    dump = os.environ.get("DSRT_FAKE_DUMP", "prompt")
    seq = ids + generated[:-1] if dump == "full" else ids
    logits = model.prefill_logits(seq).astype(np.float32)
    if bug == "logit_noise":
        logits += np.float32(1e-3)
    if args.dump_logits:
        np.save(args.dump_logits, logits[-1] if dump == "last" else logits)
    print("fake_dsrt: some log line on stdout")
    if args.json:
        print(json.dumps({"prompt_len": len(ids), "generated_ids": generated}))
    else:
        print(" ".join(map(str, generated)))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="fake dsrt for the parity self-check")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth")
    s.add_argument("--config", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--output", required=True)
    b = sub.add_parser("build")
    b.add_argument("--checkpoint", required=True)
    b.add_argument("--output", required=True)
    b.add_argument("--dtype", default="f32")
    r = sub.add_parser("run")
    r.add_argument("engine")
    r.add_argument("--ids", required=True)
    r.add_argument("--max-new-tokens", type=int, default=8)
    r.add_argument("--greedy", action="store_true")
    r.add_argument("--json", action="store_true")
    r.add_argument("--dump-logits")
    args = ap.parse_args(argv)
    return {"synth": cmd_synth, "build": cmd_build, "run": cmd_run}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
