#!/usr/bin/python3
"""Prove the NumPy reference right: compare it with DeepSeek's golden numbers.

For every <golden>/tiny-* case: max |prefill logits - logits.npy| <= 5e-5 and
greedy(16) == greedy.json.  The golden directory is $DSRT_GOLDEN_DIR, by default
<repo>/../shared/golden.  Exit status 0 iff every case passes.

    /usr/bin/python3 tests/numpy_ref/test_golden.py
"""

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deepseek_ref import load_checkpoint  # noqa: E402

LOGITS_TOLERANCE = 5e-5
GREEDY_TOKENS = 16
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def golden_dir() -> str:
    return os.environ.get("DSRT_GOLDEN_DIR",
                          os.path.join(REPO_ROOT, "..", "shared", "golden"))


def check_case(case_dir: str) -> bool:
    name = os.path.basename(case_dir)
    with open(os.path.join(case_dir, "input_ids.json")) as f:
        ids = json.load(f)
    with open(os.path.join(case_dir, "greedy.json")) as f:
        expected_greedy = json.load(f)
    expected_logits = np.load(os.path.join(case_dir, "logits.npy"))

    start = time.time()
    model = load_checkpoint(case_dir)
    logits = model.prefill_logits(ids)
    greedy = model.greedy(ids, len(expected_greedy))
    elapsed = time.time() - start

    shape_ok = logits.shape == expected_logits.shape
    diff = float(np.max(np.abs(logits - expected_logits))) if shape_ok else float("inf")
    argmax_same = shape_ok and bool(np.all(np.argmax(logits, -1) == np.argmax(expected_logits, -1)))
    logits_ok = diff <= LOGITS_TOLERANCE
    greedy_ok = greedy == expected_greedy
    ok = logits_ok and greedy_ok
    print(f"{name:14s} {'PASS' if ok else 'FAIL'}  T={len(ids):3d}  "
          f"max|logits-golden|={diff:.3e} (tol {LOGITS_TOLERANCE:g})  "
          f"argmax all equal={argmax_same}  greedy({len(expected_greedy)}) "
          f"{'equal' if greedy_ok else 'DIFFERS'}  "
          f"min routing gap={model.min_route_margin:.2e}  [{elapsed:.2f}s]")
    if not shape_ok:
        print(f"  logits shape {logits.shape} != golden {expected_logits.shape}")
    if not greedy_ok:
        print(f"  expected {expected_greedy}\n  got      {greedy}")
    return ok


def main() -> int:
    root = golden_dir()
    if not os.path.isdir(root):
        print(f"golden directory not found: {root} (set DSRT_GOLDEN_DIR)")
        return 2
    cases = sorted(os.path.join(root, d) for d in os.listdir(root)
                   if d.startswith("tiny-") and os.path.isdir(os.path.join(root, d)))
    if not cases:
        print(f"no tiny-* cases under {root}")
        return 2
    failed = [c for c in cases if not check_case(c)]
    print(f"{len(cases) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
