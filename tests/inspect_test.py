#!/usr/bin/python3
"""`dsrt inspect`: the JSON summary has DESIGN.md's keys, the dot output renders with
GraphViz's own `dot -Tsvg`, and the svg shows layers as clusters and ops with shapes.

usage: inspect_test.py --dsrt BUILD/tools/dsrt/dsrt
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

KEYS = ["model_type", "num_layers", "vocab_size", "parameters", "weight_bytes", "kv_cache_bytes_per_token",
        "activation_arena_bytes", "ranks", "passes", "ops"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsrt", required=True)
    args = parser.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as work:
        ckpt, engine = os.path.join(work, "ckpt"), os.path.join(work, "m.engine")
        for cmd in (["synth", "--preset", "tiny-v2-lite", "--output", ckpt, "--no-tokenizer"],
                    ["build", "--checkpoint", ckpt, "--output", engine, "--dtype", "bf16"]):
            subprocess.run([args.dsrt, *cmd], check=True, capture_output=True)

        summary = json.loads(subprocess.run([args.dsrt, "inspect", engine, "--json"], check=True,
                                            capture_output=True, text=True).stdout)
        missing = [k for k in KEYS if k not in summary]
        if missing:
            failures.append(f"inspect --json lacks {missing}")
        # V2-Lite's latent cache: layers × (kv_lora_rank + qk_rope_head_dim) × 2 bytes.
        if summary.get("kv_cache_bytes_per_token") != 3 * (32 + 16) * 2:
            failures.append(f"kv_cache_bytes_per_token {summary.get('kv_cache_bytes_per_token')} != 288")

        dot, svg = os.path.join(work, "g.dot"), os.path.join(work, "g.svg")
        subprocess.run([args.dsrt, "inspect", engine, "--dot", dot, "--svg", svg], check=True, capture_output=True)
        rendered = subprocess.run(["dot", "-Tsvg", dot], capture_output=True, text=True)
        if rendered.returncode != 0:
            failures.append(f"dot -Tsvg rejects the dot output: {rendered.stderr.strip()}")
        text = open(svg, encoding="utf-8").read()
        for needle in ("<svg", "cluster_layers.0", "layers.2", "MLAAttention", "FusedMoE", "f32[tokens,64]"):
            if needle not in text:
                failures.append(f"the svg lacks {needle!r}")
    for f in failures:
        print("FAIL:", f)
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
