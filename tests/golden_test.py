#!/usr/bin/python3
"""Golden parity: dsrt engines against DeepSeek's official reference numbers.

For every case in ../shared/golden/tiny-*: build an f32 engine, dump the prefill
logits and decode greedily; they must match logits.npy within 5e-4 at every
position and reproduce greedy.json exactly. A bf16 engine must stay close
(cosine >= 0.999 per position, argmax agreement >= 90%); its figures are printed.

usage: golden_test.py --dsrt BUILD/tools/dsrt/dsrt [--backend onednn|reference] [--golden DIR] [--workdir DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

import golden_cases

F32_TOLERANCE = 5e-4
BF16_MIN_COSINE = 0.999
BF16_MIN_ARGMAX_AGREEMENT = 0.90


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def engine_outputs(dsrt, backend, case_dir, work, dtype, ids, new_tokens):
    name = os.path.basename(case_dir)
    engine = os.path.join(work, f"{name}.{dtype}.engine")
    logits_path = os.path.join(work, f"{name}.{dtype}.npy")
    run([dsrt, "build", "--checkpoint", case_dir, "--output", engine, "--dtype", dtype])
    out = run([dsrt, "run", engine, "--ids", ",".join(map(str, ids)), "--max-new-tokens", str(new_tokens),
               "--greedy", "--json", "--dump-logits", logits_path, "--backend", backend])
    return np.load(logits_path), json.loads(out.strip().splitlines()[-1])["generated_ids"]


def cosine_per_row(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def check_case(dsrt, backend, case_dir, work):
    ids, golden_logits, golden_greedy = golden_cases.load_case(case_dir)
    name = os.path.basename(case_dir)
    failures = []

    logits, greedy = engine_outputs(dsrt, backend, case_dir, work, "f32", ids, len(golden_greedy))
    if logits.shape != golden_logits.shape:
        return [f"{name} f32: logits shape {logits.shape}, golden {golden_logits.shape}"]
    err = float(np.abs(logits - golden_logits).max())
    print(f"{name} f32: max |dlogit| {err:.2e} (tolerance {F32_TOLERANCE:.0e}), greedy "
          f"{'matches' if greedy == golden_greedy else 'DIFFERS'}")
    if err > F32_TOLERANCE:
        failures.append(f"{name} f32: max |dlogit| {err:.3e} > {F32_TOLERANCE}")
    if greedy != golden_greedy:
        failures.append(f"{name} f32: greedy {greedy} != golden {golden_greedy}")

    logits16, greedy16 = engine_outputs(dsrt, backend, case_dir, work, "bf16", ids, len(golden_greedy))
    cos = cosine_per_row(logits16.astype(np.float64), golden_logits.astype(np.float64))
    agree = float(np.mean(np.argmax(logits16, axis=1) == np.argmax(golden_logits, axis=1)))
    same_greedy = sum(a == b for a, b in zip(greedy16, golden_greedy))
    print(f"{name} bf16: min cosine {cos.min():.6f}, argmax agreement {agree:.1%}, max |dlogit| "
          f"{np.abs(logits16 - golden_logits).max():.3f}, greedy tokens equal {same_greedy}/{len(golden_greedy)}")
    if cos.min() < BF16_MIN_COSINE:
        failures.append(f"{name} bf16: min cosine {cos.min():.6f} < {BF16_MIN_COSINE}")
    if agree < BF16_MIN_ARGMAX_AGREEMENT:
        failures.append(f"{name} bf16: argmax agreement {agree:.1%} < {BF16_MIN_ARGMAX_AGREEMENT:.0%}")
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsrt", required=True)
    parser.add_argument("--golden", default=golden_cases.DEFAULT_DIR)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--backend", default="onednn", help="onednn (the product) or reference (the specification)")
    args = parser.parse_args()
    cases = golden_cases.case_dirs(args.golden)
    if not cases:
        print(f"no golden cases under {args.golden}")
        return 1
    passed = failed = 0
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        for case in cases:
            try:
                failures = check_case(args.dsrt, args.backend, case, work)
            except RuntimeError as e:
                failures = [str(e)]
            for f in failures:
                print("FAIL:", f)
            passed += not failures
            failed += bool(failures)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
