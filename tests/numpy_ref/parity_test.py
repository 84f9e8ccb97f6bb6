#!/usr/bin/python3
"""Randomised parity test: the dsrt engine against the float64 NumPy reference.

For each seed N (seed-base .. seed-base+count-1):

  1. random_configs.make_config(N)          -> WORK/cfgN/config.json
  2. dsrt synth --config ... --seed N --output WORK/ckptN
  3. dsrt build --checkpoint WORK/ckptN --output WORK/eN.engine --dtype f32
  4. dsrt run WORK/eN.engine --ids <1..48 random ids> --max-new-tokens 8 --greedy
         --json --dump-logits WORK/lN.npy
  5. the reference loads WORK/ckptN (the checkpoint dsrt wrote) and checks
       - max |dsrt logits - reference| <= 5e-4 over every dumped position whose
         input tokens agree with the reference path, and
       - the JSON line's "generated_ids" == reference greedy(8).
     A divergence at a step where the reference's top-1 margin is < 1e-3 (a near
     tie, and dsrt's token is one of the tied ones) is reported SKIP-COMPARE, not a
     failure.  Positions from the first one where a reference router decision is
     within 1e-5 of a tie on are not compared either (float32 may route them
     differently); that too is reported SKIP-COMPARE.

Prints one line per config and ends with exactly "N passed, M failed" (SKIP-COMPARE
counts as passed); the exit status is 0 iff M == 0.

    /usr/bin/python3 tests/numpy_ref/parity_test.py --dsrt build/dsrt --count 20
    /usr/bin/python3 tests/numpy_ref/parity_test.py --self-check

--self-check runs the same driver against fake_dsrt.py (the reference itself in
float32, with the test suite's own checkpoint writer), then against deliberately
broken fakes, and verifies that the correct fake passes every seed and that each
bug is caught.
"""

import argparse
import json
import math
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import deepseek_ref  # noqa: E402
from random_configs import make_config, summarize  # noqa: E402

LOGITS_TOLERANCE = 5e-4
TIE_MARGIN = 1e-3          # top-1 margin below which greedy may legitimately differ
ROUTE_TIE_MARGIN = 1e-5    # router gap below which float32 may route differently
MAX_NEW_TOKENS = 8
MAX_PROMPT_LEN = 48


class StepError(Exception):
    """A dsrt subcommand failed or produced unusable output."""


# ----------------------------------------------------------------------------
# running dsrt
# ----------------------------------------------------------------------------


def run_step(cmd: Sequence[str], what: str, timeout: float, env: Optional[dict] = None) -> str:
    """Run one subprocess; return its stdout or raise StepError with the stderr tail."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                              env=env)
    except FileNotFoundError as e:
        raise StepError(f"{what}: cannot execute {cmd[0]!r}: {e}")
    except subprocess.TimeoutExpired:
        raise StepError(f"{what}: timed out after {timeout:g}s: {shlex.join(cmd)}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-25:])
        out_tail = "\n".join((proc.stdout or "").strip().splitlines()[-5:])
        raise StepError(f"{what}: exit code {proc.returncode}: {shlex.join(cmd)}\n"
                        f"--- stderr (tail) ---\n{tail}\n--- stdout (tail) ---\n{out_tail}")
    return proc.stdout


def parse_generated_ids(stdout: str) -> List[int]:
    """generated_ids from the last JSON object line of `dsrt run --json` output."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "generated_ids" in obj:
            return [int(t) for t in obj["generated_ids"]]
    raise StepError("dsrt run printed no JSON line with \"generated_ids\"; stdout tail:\n"
                    + "\n".join(stdout.strip().splitlines()[-5:]))


def prompt_ids(seed: int, vocab_size: int) -> List[int]:
    """A deterministic random prompt of 1..48 ids below vocab_size."""
    rng = random.Random(7919 * seed + 11)
    return [rng.randrange(vocab_size) for _ in range(rng.randint(1, MAX_PROMPT_LEN))]


# The config keys whose values change inference; dsrt synth must preserve them.
SEMANTIC_KEYS = (
    "model_type", "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size",
    "num_hidden_layers", "num_attention_heads", "n_shared_experts", "n_routed_experts",
    "routed_scaling_factor", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim",
    "qk_nope_head_dim", "v_head_dim", "topk_method", "n_group", "topk_group",
    "num_experts_per_tok", "moe_layer_freq", "first_k_dense_replace", "norm_topk_prob",
    "scoring_func", "hidden_act", "rope_theta", "rope_scaling", "rms_norm_eps",
    "tie_word_embeddings",
)


def _same_value(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def config_mismatches(requested: dict, written: dict) -> List[str]:
    """Semantic keys of the requested config that the written config.json changed."""
    out = []
    for key in SEMANTIC_KEYS:
        if key not in requested:
            continue
        want, got = requested[key], written.get(key, "<absent>")
        if key == "topk_method":
            want, got = ("greedy" if v == "gready" else v for v in (want, got))
        if not _same_value(want, got):
            out.append(f"{key}: requested {requested[key]!r}, checkpoint has {got!r}")
    return out


def load_reference(ckpt_dir: str, requested_cfg: dict) -> deepseek_ref.Model:
    """The float64 reference over the checkpoint dsrt wrote (its config.json if present)."""
    path = os.path.join(ckpt_dir, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            written = json.load(f)
        bad = config_mismatches(requested_cfg, written)
        if bad:
            raise StepError("dsrt synth wrote a config.json that differs from the requested "
                            "one:\n  " + "\n  ".join(bad))
        cfg = deepseek_ref.parse_config(written)
    else:
        cfg = deepseek_ref.parse_config(requested_cfg)
    tensors = deepseek_ref.load_tensors_dequantized(ckpt_dir, cfg.fp8_block)
    return deepseek_ref.Model(cfg, tensors)


# ----------------------------------------------------------------------------
# comparison (pure: a reference model and dsrt's outputs in, a verdict out)
# ----------------------------------------------------------------------------


@dataclass
class Comparison:
    status: str                     # PASS | FAIL | SKIP-COMPARE
    max_diff: float
    rows_compared: int
    tokens_agreeing: int
    reference_ids: List[int]
    min_top1_margin: float
    min_route_margin: float
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def _logit_positions(dumped: np.ndarray, prompt_len: int, vocab: int):
    """Map the dumped array onto sequence positions: (array [rows, vocab], positions)."""
    array = np.asarray(dumped)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != vocab:
        raise StepError(f"dumped logits have shape {np.shape(dumped)}; expected "
                        f"[T, {vocab}] (or [{vocab}] for the last position)")
    rows = array.shape[0]
    if rows == 1:
        return array, [prompt_len - 1]  # the last prompt position only
    if rows < prompt_len:
        raise StepError(f"dumped logits have {rows} rows for a {prompt_len}-token prompt")
    return array, list(range(rows))


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def compare_with_reference(model: deepseek_ref.Model, prompt: List[int],
                           dsrt_ids: List[int], dumped_logits: np.ndarray,
                           n_new: int = MAX_NEW_TOKENS, tol: float = LOGITS_TOLERANCE,
                           tie_margin: float = TIE_MARGIN,
                           route_tie_margin: float = ROUTE_TIE_MARGIN,
                           eos_token_id: Optional[int] = None) -> Comparison:
    """Judge dsrt's generated ids and dumped logits against the float64 reference.

    Logits are compared at every dumped position whose input tokens dsrt and the
    reference share (the prompt, plus generated tokens up to the first divergence)
    and that precedes the first position where a reference router decision is
    within route_tie_margin of a tie (a causal model: a router flip at position p
    changes rows >= p only).  Anything not compared for a tie makes the verdict
    SKIP-COMPARE rather than PASS; any mismatch in what is compared is a FAIL.
    """
    ref_ids, margins = model.greedy_with_margins(prompt, n_new)
    ref_logits = model.prefill_logits(prompt + ref_ids)  # positions 0 .. T+n-1
    route_margins = model.route_margins.copy()
    T, vocab = len(prompt), ref_logits.shape[1]
    near = np.nonzero(route_margins < route_tie_margin)[0]
    route_tie_pos = int(near[0]) if near.size else None
    agree = _common_prefix(dsrt_ids, ref_ids)
    notes = []

    # 1. generated tokens
    if dsrt_ids == ref_ids:
        gen = "ok"
    elif (agree == len(dsrt_ids) < len(ref_ids) and dsrt_ids
          and eos_token_id is not None and dsrt_ids[-1] == eos_token_id):
        gen = "ok"
        notes.append(f"dsrt stopped at eos after {len(dsrt_ids)} tokens")
    elif agree < min(len(dsrt_ids), len(ref_ids)) and margins[agree] < tie_margin:
        row = ref_logits[T - 1 + agree]
        gap = float(row.max() - row[dsrt_ids[agree]])
        if gap <= tie_margin:
            gen = "skip"
            notes.append(f"greedy diverges at step {agree} where the reference top-1 margin "
                         f"is {margins[agree]:.2e} < {tie_margin:g} (near tie; dsrt's token "
                         f"{dsrt_ids[agree]} is {gap:.2e} below the max): compare skipped")
        else:
            gen = "fail"
            notes.append(f"greedy diverges at step {agree} (near tie there, but dsrt's token "
                         f"{dsrt_ids[agree]} is {gap:.2e} below the max)")
    elif (agree < min(len(dsrt_ids), len(ref_ids)) and route_tie_pos is not None
          and route_tie_pos <= T - 1 + agree):
        gen = "skip"
        notes.append(f"greedy diverges at step {agree}, after a router near tie at position "
                     f"{route_tie_pos} (gap {route_margins[route_tie_pos]:.1e}): compare skipped")
    else:
        gen = "fail"
        where = (f"step {agree} (reference top-1 margin {margins[agree]:.2e})"
                 if agree < len(ref_ids) else "the end (dsrt generated more tokens)")
        notes.append(f"generated_ids differ at {where}")
    if gen == "fail":
        notes.append(f"dsrt      {dsrt_ids}")
        notes.append(f"reference {ref_ids}")
        if len(dsrt_ids) > len(ref_ids) and dsrt_ids[:T] == prompt:
            notes.append("(dsrt's generated_ids seem to include the prompt)")

    # 2. logits at the positions both sides computed from the same tokens
    array, positions = _logit_positions(dumped_logits, T, vocab)
    if positions[-1] >= T + max(len(dsrt_ids), 1):
        raise StepError(f"dumped logits have {len(positions)} rows, more than prompt "
                        f"({T}) + generated ({len(dsrt_ids)}) positions")
    same_input = [k for k, p in enumerate(positions) if p < T + agree]
    keep = [k for k in same_input if route_tie_pos is None or positions[k] < route_tie_pos]
    if len(positions) > len(same_input):
        notes.append(f"{len(positions) - len(same_input)} dumped row(s) after the greedy "
                     f"divergence not compared")
    route_skipped = len(same_input) - len(keep)
    if route_skipped:
        notes.append(f"{route_skipped} row(s) from position {route_tie_pos} on not compared: "
                     f"a reference router decision there is within "
                     f"{route_margins[route_tie_pos]:.1e} of a tie")
    kept_rows = array[keep].astype(np.float64)
    diff = np.abs(kept_rows - ref_logits[[positions[k] for k in keep]])
    if not np.all(np.isfinite(kept_rows)):
        max_diff = math.inf
        notes.append("dumped logits contain NaN/inf")
    else:
        max_diff = float(np.max(diff)) if diff.size else 0.0
    logits_ok = max_diff <= tol
    if not logits_ok and diff.size:
        worst = np.unravel_index(np.argmax(np.where(np.isfinite(diff), diff, np.inf)),
                                 diff.shape)
        notes.append(f"logits differ by {max_diff:.3e} > {tol:g} (worst at position "
                     f"{positions[keep[worst[0]]]}, token {worst[1]})")
    scale = float(np.max(np.abs(ref_logits)))
    notes.append(f"reference max |logit| {scale:.3g}")
    warnings = []
    if scale < 0.5:
        warnings.append(f"WARNING: reference logits are tiny (max |logit| {scale:.2g}); the "
                        f"{tol:g} tolerance is weak and near ties are likely: the synthetic "
                        f"weights should be scaled so that logits are O(1)")

    # 3. verdict
    if not logits_ok or gen == "fail":
        status = "FAIL"
    elif gen == "skip" or route_skipped:
        status = "SKIP-COMPARE"
    else:
        status = "PASS"
    return Comparison(status, max_diff, len(keep), agree, ref_ids,
                      min(margins) if margins else math.inf,
                      float(np.min(route_margins)) if route_margins.size else math.inf, notes,
                      warnings)


# ----------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------


@dataclass
class CaseResult:
    seed: int
    status: str
    max_diff: float
    summary: str
    notes: List[str]
    seconds: float
    warnings: List[str] = field(default_factory=list)


def run_case(dsrt: List[str], seed: int, work: str, args, env: Optional[dict] = None) -> CaseResult:
    start = time.time()
    cfg = make_config(seed)
    summary = summarize(cfg)
    cfg_dir = os.path.join(work, f"cfg{seed}")
    ckpt = os.path.join(work, f"ckpt{seed}")
    engine = os.path.join(work, f"e{seed}.engine")
    logits_path = os.path.join(work, f"l{seed}.npy")
    os.makedirs(cfg_dir, exist_ok=True)
    cfg_path = os.path.join(cfg_dir, "config.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
    prompt = prompt_ids(seed, cfg["vocab_size"])
    try:
        if os.path.exists(logits_path):
            os.remove(logits_path)  # never compare a stale dump
        run_step(dsrt + ["synth", "--config", cfg_path, "--seed", str(seed), "--output", ckpt],
                 "dsrt synth", args.timeout, env)
        run_step(dsrt + ["build", "--checkpoint", ckpt, "--output", engine,
                         "--dtype", args.dtype], "dsrt build", args.timeout, env)
        stdout = run_step(dsrt + ["run", engine, "--ids", ",".join(map(str, prompt)),
                                  "--max-new-tokens", str(args.max_new_tokens), "--greedy",
                                  "--json", "--dump-logits", logits_path],
                          "dsrt run", args.timeout, env)
        dsrt_ids = parse_generated_ids(stdout)
        if not os.path.exists(logits_path):
            raise StepError(f"dsrt run wrote no {logits_path}")
        dumped = np.load(logits_path)
        model = load_reference(ckpt, cfg)
        cmp = compare_with_reference(model, prompt, dsrt_ids, dumped, args.max_new_tokens,
                                     args.tol, args.tie_margin, args.route_tie_margin,
                                     cfg.get("eos_token_id"))
        notes = [f"T={len(prompt)} rows={cmp.rows_compared} "
                 f"gen {cmp.tokens_agreeing}/{args.max_new_tokens} "
                 f"min top-1 margin {cmp.min_top1_margin:.1e} "
                 f"min router gap {cmp.min_route_margin:.1e}"] + cmp.notes
        return CaseResult(seed, cmp.status, cmp.max_diff, summary, notes, time.time() - start,
                          cmp.warnings)
    except StepError as e:
        return CaseResult(seed, "FAIL", math.nan, summary, str(e).splitlines(),
                          time.time() - start)
    except Exception as e:  # the reference itself (or numpy) failed: still report, go on
        return CaseResult(seed, "FAIL", math.nan, summary,
                          [f"{type(e).__name__}: {e}"], time.time() - start)


def run_suite(dsrt: List[str], seeds: Sequence[int], work: str, args,
              env: Optional[dict] = None, verbose: bool = True) -> List[CaseResult]:
    os.makedirs(work, exist_ok=True)
    results = []
    for seed in seeds:
        r = run_case(dsrt, seed, work, args, env)
        results.append(r)
        if verbose:
            print(f"seed {r.seed:3d}  {r.status:12s} max|diff| {r.max_diff:9.3e}  "
                  f"[{r.seconds:5.1f}s]  {r.summary}", flush=True)
            show = r.notes if (r.status != "PASS" or args.verbose) else []
            for line in r.warnings + show:
                print(f"      {line}", flush=True)
    return results


def tally(results: List[CaseResult]):
    failed = sum(r.status == "FAIL" for r in results)
    skipped = sum(r.status == "SKIP-COMPARE" for r in results)
    return len(results) - failed, failed, skipped


# ----------------------------------------------------------------------------
# self-check: the driver against fake dsrt binaries, correct and broken
# ----------------------------------------------------------------------------


def self_check(args, seeds: List[int], work: str) -> int:
    fake = [sys.executable, os.path.join(HERE, "fake_dsrt.py")]
    problems = []
    checks = 0

    def phase(name, seed_list, extra_env):
        env = dict(os.environ, **extra_env)
        print(f"== self-check: {name}  (seeds {seed_list[0]}..{seed_list[-1]}, "
              f"{len(seed_list)} configs)", flush=True)
        results = run_suite(fake, seed_list, os.path.join(work, name), args, env)
        passed, failed, skipped = tally(results)
        print(f"   {passed} passed ({skipped} skipped-compare), {failed} failed", flush=True)
        return results

    # 1. The correct fake must pass every config: this also proves every random config
    #    is valid, the writer's checkpoints load, and float32 stays within tolerance.
    results = phase("correct", seeds, {})
    worst = max((r.max_diff for r in results if not math.isnan(r.max_diff)), default=0.0)
    print(f"   largest float32-vs-float64 logits diff: {worst:.3e}")
    checks += 3
    if tally(results)[1]:
        problems.append("the correct fake failed some configs")
    for dump in ("full", "last"):
        sub = seeds[:min(len(seeds), 5)]
        if tally(phase(f"correct-dump-{dump}", sub, {"DSRT_FAKE_DUMP": dump}))[1]:
            problems.append(f"the correct fake failed with DSRT_FAKE_DUMP={dump}")

    # 2. Each deliberate bug must be caught on the configs it affects.
    cfgs = {s: make_config(s) for s in seeds}

    def affected(pred):
        return [s for s in seeds if pred(cfgs[s])][:4]

    bugs = {
        "rotate_half": affected(lambda c: c["qk_rope_head_dim"] > 2),
        "no_router_bias": affected(lambda c: c.get("topk_method") == "noaux_tc"),
        "v2_norm_and_scale": affected(
            lambda c: c["model_type"] == "deepseek_v2" and c.get("norm_topk_prob")
            and (c.get("num_experts_per_tok") or 0) > 1
            and c.get("routed_scaling_factor", 1.0) != 1.0),
        "logit_noise": seeds[:2],
        "crash": seeds[:1],
    }
    for bug, bug_seeds in bugs.items():
        if not bug_seeds:
            print(f"== self-check: bug {bug}: no config in these seeds exercises it")
            continue
        results = phase(f"bug-{bug}", bug_seeds, {"DSRT_FAKE_BUG": bug})
        caught = sum(r.status == "FAIL" for r in results)
        need = len(bug_seeds) if bug in ("logit_noise", "crash") else 1
        print(f"   bug {bug}: caught on {caught}/{len(bug_seeds)} configs "
              f"(max diffs {', '.join(f'{r.max_diff:.2g}' for r in results)})")
        checks += 1
        if caught < need:
            problems.append(f"bug {bug} was not caught")

    # 3. Unit checks of the comparison logic with synthetic dsrt outputs.
    unit_checks, unit_problems = comparison_unit_checks(work)
    checks += unit_checks
    problems += unit_problems

    for p in problems:
        print(f"SELF-CHECK PROBLEM: {p}")
    print("self-check " + ("OK" if not problems else "FAILED"))
    print(f"{checks - len(problems)} passed, {len(problems)} failed")
    return 0 if not problems else 1


def comparison_unit_checks(work: str):
    """compare_with_reference on hand-made outputs: ties, eos stop, shapes, divergence.
    Returns (number of checks, problems)."""
    import checkpoint_writer
    problems, count = [], [0]
    cfg = make_config(0)
    ckpt = os.path.join(work, "unit_ckpt")
    checkpoint_writer.write_checkpoint(cfg, 0, ckpt)
    model = deepseek_ref.load_checkpoint(ckpt)
    prompt = prompt_ids(0, cfg["vocab_size"])[:10]
    T = len(prompt)
    ref_ids, margins = model.greedy_with_margins(prompt, 8)
    full = model.prefill_logits(prompt + ref_ids)

    def expect(label, want, **kw):
        count[0] += 1
        try:
            got = compare_with_reference(model, prompt, **kw).status
        except StepError as e:
            got = f"StepError({str(e).splitlines()[0]})"
        good = got.startswith(want)
        print(f"   unit {'ok ' if good else 'BAD'} {label}: {got}")
        if not good:
            problems.append(f"unit check {label}: expected {want}, got {got}")

    expect("exact", "PASS", dsrt_ids=ref_ids, dumped_logits=full[:T])
    expect("float32 dump", "PASS", dsrt_ids=ref_ids, dumped_logits=full[:T].astype(np.float32))
    expect("full dump [T+n]", "PASS", dsrt_ids=ref_ids, dumped_logits=full)
    expect("full dump [T+n-1]", "PASS", dsrt_ids=ref_ids, dumped_logits=full[:-1])
    expect("last row only", "PASS", dsrt_ids=ref_ids, dumped_logits=full[T - 1])
    expect("batched [1,T,V]", "PASS", dsrt_ids=ref_ids, dumped_logits=full[None, :T])
    expect("logits off by 1e-3", "FAIL", dsrt_ids=ref_ids, dumped_logits=full[:T] + 1e-3)
    expect("logits off by 4e-4", "PASS", dsrt_ids=ref_ids, dumped_logits=full[:T] + 4e-4)
    nan = full[:T].copy()
    nan[0, 0] = np.nan
    expect("NaN in logits", "FAIL", dsrt_ids=ref_ids, dumped_logits=nan)
    expect("wrong vocab", "StepError(dumped logits have shape", dsrt_ids=ref_ids,
           dumped_logits=full[:T, :-1])
    wrong = list(ref_ids)
    step = int(np.argmax(np.array(margins) > 1e-2))
    wrong[step] = int(np.argsort(-full[T - 1 + step])[1])
    expect("divergence at a clear step", "FAIL", dsrt_ids=wrong, dumped_logits=full[:T])
    expect("divergence, later rows ignored", "FAIL", dsrt_ids=wrong, dumped_logits=full)
    expect("too few tokens", "FAIL", dsrt_ids=ref_ids[:5], dumped_logits=full[:T])
    eos_stop = ref_ids[:3]
    expect("eos stop", "PASS", dsrt_ids=eos_stop, dumped_logits=full[:T],
           eos_token_id=eos_stop[-1] if eos_stop[-1] not in eos_stop[:-1] else None)
    # A near tie: shrink the margin by demanding a huge tie threshold.
    runner_up = list(ref_ids)
    runner_up[0] = int(np.argsort(-full[T - 1])[1])
    gap0 = float(margins[0])
    expect("near tie at step 0", "SKIP-COMPARE", dsrt_ids=runner_up, dumped_logits=full[:T],
           tie_margin=gap0 * 1.5 + 1e-12)
    return count[0], problems


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="dsrt vs NumPy reference randomized parity test")
    ap.add_argument("--dsrt", help="the dsrt binary (or a command line, e.g. 'python3 x.py')")
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--seed-base", type=int, default=0)
    ap.add_argument("--seeds", help="comma-separated explicit seeds (overrides --count)")
    ap.add_argument("--workdir", help="work directory (default: a new temp directory)")
    ap.add_argument("--dtype", default="f32", help="dsrt build --dtype (default f32)")
    ap.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    ap.add_argument("--tol", type=float, default=LOGITS_TOLERANCE)
    ap.add_argument("--tie-margin", type=float, default=TIE_MARGIN,
                    help="top-1 margin under which a greedy divergence is a near tie")
    ap.add_argument("--route-tie-margin", type=float, default=ROUTE_TIE_MARGIN,
                    help="router top-k gap under which later positions are not compared")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per dsrt command")
    ap.add_argument("--verbose", action="store_true", help="details for passing configs too")
    ap.add_argument("--self-check", action="store_true",
                    help="test this driver and the reference against fake_dsrt.py")
    args = ap.parse_args(argv)
    if not args.self_check and not args.dsrt:
        ap.error("--dsrt is required (or use --self-check)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.seeds:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    else:
        seeds = list(range(args.seed_base, args.seed_base + args.count))
    if args.workdir:
        work = os.path.abspath(args.workdir)
        os.makedirs(work, exist_ok=True)
        print(f"work directory: {work}")
        return run_in(work, seeds, args)
    # Without --workdir the checkpoints and engines (hundreds of MB) go when the run ends.
    with tempfile.TemporaryDirectory(prefix="dsrt_parity_") as work:
        return run_in(work, seeds, args)


def run_in(work: str, seeds, args) -> int:
    if args.self_check:
        return self_check(args, seeds, work)
    dsrt = [os.path.abspath(args.dsrt)] if os.path.exists(args.dsrt) else shlex.split(args.dsrt)
    results = run_suite(dsrt, seeds, work, args)
    passed, failed, skipped = tally(results)
    if skipped:
        print(f"({skipped} of the passed configs skipped a comparison because of near ties)")
    print(f"{passed} passed, {failed} failed")
    if failed and not args.workdir:
        print("(run again with --workdir DIR to keep the checkpoints, engines and logits)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
