#!/usr/bin/python3
"""Weight-only quantization figures: int8 and int4 engines against the f32 engine.

For every golden case (../shared/golden/tiny-*): build an f32 engine with the default
passes and int8 and int4 engines (f32 activations, --weights int8|int4, group size 128
unless --group-size), dump the logits over the golden prompt, and report against the f32
engine: max |dlogit|, mean, median and min per-position cosine, top-1 agreement. The bounds
below are the measured figures with modest headroom, so that a broken quantizer (a wrong
scale, swapped nibbles, a wrong group) fails. The golden models have random weights and
small hidden sizes (one group per row at g128), so int4 on them is much coarser than on
a trained model, and their near-tied router scores make a few positions route a token to
another expert once the expert inputs move slightly: those positions set the min cosine
and max |dlogit| (tiny-v2 int8: every position >= 0.9991 but one at 0.914), while the
median cosine shows how close the quantized matmuls are.

On the reference backend (the default) the figures are the quantizer's alone. On the
oneDNN backend (--backend onednn) the int8/int4 linears also quantize their activations
to int8 per group (VNNI dot products), which adds its own error: ONEDNN_BOUNDS.

usage: quantized_golden_test.py --dsrt BUILD/tools/dsrt/dsrt [--backend reference|onednn] [--golden DIR]
       [--workdir DIR] [--group-size N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

import golden_cases

# (case, scheme) -> (max |dlogit| at most, mean, median and min cosine at least, top-1 agreement at least)
# Measured at group size 128:
#   case          weights   max |dlogit|   mean cos  median cos    min cos   top-1
#   tiny-v2       int8            1.4499   0.996036    0.999663   0.913617  100.0%
#   tiny-v2       int4            3.5814   0.810747    0.854112   0.321316   25.0%
#   tiny-v2-lite  int8            0.0607   0.999922    0.999929   0.999841  100.0%
#   tiny-v2-lite  int4            1.1150   0.969241    0.968953   0.943524   33.3%
#   tiny-v3       int8            1.3151   0.994521    0.999794   0.902817   87.5%
#   tiny-v3       int4            2.8194   0.880902    0.898007   0.653366   35.0%
BOUNDS = {
    ("tiny-v2", "int8"): (2.0, 0.994, 0.9993, 0.88, 0.95),
    ("tiny-v2", "int4"): (4.5, 0.76, 0.80, 0.25, 0.15),
    ("tiny-v2-lite", "int8"): (0.10, 0.9998, 0.9998, 0.9995, 1.00),
    ("tiny-v2-lite", "int4"): (1.5, 0.95, 0.95, 0.92, 0.25),
    ("tiny-v3", "int8"): (1.8, 0.99, 0.9995, 0.87, 0.80),
    ("tiny-v3", "int4"): (3.5, 0.85, 0.86, 0.55, 0.25),
}
# The oneDNN backend, measured the same way. Every quantized linear there quantizes its
# activations to int8, prefill included (since the VNNI block kernel; before it, steps over
# 64 tokens and widths not a multiple of 64 took bf16 activations): on tiny-v3 int8, 35 of
# the 40 positions stay >= 0.99 and five (12, 14, 21, 28, 39) are router flips, four of
# which the previous kernels had as well, so its mean and min bounds sit lower than the
# reference backend's while the median bound (the matmuls themselves) does not:
#   tiny-v2       int8            0.2371   0.999128    0.999318   0.997346   95.8%
#   tiny-v2       int4            3.5807   0.812615    0.859128   0.316199   25.0%
#   tiny-v2-lite  int8            0.1031   0.999846    0.999881   0.999523  100.0%
#   tiny-v2-lite  int4            1.0751   0.969506    0.968843   0.944164   33.3%
#   tiny-v3       int8            1.7372   0.988658    0.999479   0.830557   85.0%
#   tiny-v3       int4            2.7990   0.881490    0.896836   0.654023   42.5%
ONEDNN_BOUNDS = {
    ("tiny-v2", "int8"): (2.0, 0.99, 0.999, 0.85, 0.95),
    ("tiny-v2", "int4"): (4.5, 0.75, 0.78, 0.20, 0.10),
    ("tiny-v2-lite", "int8"): (0.6, 0.998, 0.9995, 0.985, 0.95),
    ("tiny-v2-lite", "int4"): (1.5, 0.95, 0.95, 0.92, 0.25),
    ("tiny-v3", "int8"): (2.2, 0.985, 0.999, 0.78, 0.80),
    ("tiny-v3", "int4"): (3.5, 0.85, 0.86, 0.55, 0.25),
}
SCHEMES = ("int8", "int4")


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def prompt_logits(dsrt, backend, case_dir, work, weights, group_size, ids):
    tag = f"{os.path.basename(case_dir)}.{weights}"
    engine = os.path.join(work, f"{tag}.engine")
    logits = os.path.join(work, f"{tag}.npy")
    build = [dsrt, "build", "--checkpoint", case_dir, "--output", engine, "--dtype", "f32"]
    if weights != "f32":
        build += ["--weights", weights, "--quant-group-size", str(group_size)]
    run(build)
    run([dsrt, "run", engine, "--ids", ",".join(map(str, ids)), "--max-new-tokens", "1", "--greedy", "--json",
         "--dump-logits", logits, "--backend", backend])
    return np.load(logits).astype(np.float64)


def figures(reference, logits):
    cos = np.sum(reference * logits, axis=1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(logits, axis=1))
    return (float(np.abs(reference - logits).max()), float(cos.mean()), float(np.median(cos)), float(cos.min()),
            float(np.mean(np.argmax(reference, axis=1) == np.argmax(logits, axis=1))))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsrt", required=True)
    parser.add_argument("--golden", default=golden_cases.DEFAULT_DIR)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--group-size", type=int, default=128)
    parser.add_argument("--backend", default="reference", choices=("reference", "onednn"))
    args = parser.parse_args()
    bounds = BOUNDS if args.backend == "reference" else ONEDNN_BOUNDS
    cases = golden_cases.case_dirs(args.golden)
    if not cases:
        print(f"no golden cases under {args.golden}")
        return 1
    check = args.group_size == 128  # the bounds are for the default group size
    failures = []
    print(f"{'case':<14}{'weights':<9}{'max |dlogit|':>13}{'mean cos':>11}{'median cos':>12}{'min cos':>11}{'top-1':>8}"
          f"   (vs the f32 engine, group size {args.group_size}, {args.backend} backend)")
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        for case in cases:
            name = os.path.basename(case)
            ids = json.load(open(os.path.join(case, "input_ids.json")))
            try:
                reference = prompt_logits(args.dsrt, args.backend, case, work, "f32", args.group_size, ids)
                for scheme in SCHEMES:
                    got = figures(reference,
                                  prompt_logits(args.dsrt, args.backend, case, work, scheme, args.group_size, ids))
                    print(f"{name:<14}{scheme:<9}{got[0]:>13.4f}{got[1]:>11.6f}{got[2]:>12.6f}{got[3]:>11.6f}{got[4]:>8.1%}")
                    bound = bounds.get((name, scheme))
                    if not check or bound is None:
                        continue
                    if got[0] > bound[0]:
                        failures.append(f"{name} {scheme}: max |dlogit| {got[0]:.4f} > {bound[0]}")
                    for i, what in ((1, "mean cosine"), (2, "median cosine"), (3, "min cosine"), (4, "top-1 agreement")):
                        if got[i] < bound[i]:
                            failures.append(f"{name} {scheme}: {what} {got[i]:.6f} < {bound[i]}")
            except RuntimeError as e:
                failures.append(str(e))
    for f in failures:
        print("FAIL:", f)
    print("ok" if not failures else f"{len(failures)} failed")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
