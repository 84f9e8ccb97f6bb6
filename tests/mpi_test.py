#!/usr/bin/python3
"""Partitioned engines under mpirun: each rank a process, as users run them.

For every golden case (../shared/golden/tiny-*), f32 engines built with --tp 2, --ep 2 and
--tp 2 --ep 2 (and --ep 2 --moe-combine alltoall) run under `mpirun -n 2 --oversubscribe`: their prefill logits must match
DeepSeek's reference numbers within the golden tolerance (5e-4) and their greedy
continuation must equal greedy.json. Randomized configurations (tests/numpy_ref/
random_configs.py) run every partition their heads and experts allow and must match the
single-rank engine's logits and greedy tokens. Then what goes wrong must end cleanly, on every
rank, within a time limit: a world size that does not match the engine, ranks given
different engine files, and a rank that dies.

usage: mpi_test.py --dsrt BUILD/tools/dsrt/dsrt [--golden DIR] [--random N]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "numpy_ref"))
import random_configs  # noqa: E402
import golden_cases  # noqa: E402

F32_TOLERANCE = 5e-4
PARTITIONS = {"tp2": ["--tp", "2"], "ep2": ["--ep", "2"], "tp2ep2": ["--tp", "2", "--ep", "2"],
              "ep2-alltoall": ["--ep", "2", "--moe-combine", "alltoall"]}
TIMEOUT_S = 120  # a hang is a failure, not a stuck CI


def mpirun_prefix():
    cmd = [shutil.which("mpirun") or "mpirun", "--oversubscribe", "--mca", "btl_vader_single_copy_mechanism", "none"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    return cmd


def run(cmd, expect_ok=True):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    if expect_ok and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def check_golden(dsrt, case_dir, work):
    name = os.path.basename(case_dir)
    ids, golden_logits, golden_greedy = golden_cases.load_case(case_dir)
    failures = []
    for partition, flags in PARTITIONS.items():
        engine = os.path.join(work, f"{name}.{partition}.engine")
        logits_path = os.path.join(work, f"{name}.{partition}.npy")
        run([dsrt, "build", "--checkpoint", case_dir, "--output", engine, "--dtype", "f32"] + flags)
        out = run(mpirun_prefix() + ["-n", "2", dsrt, "run", engine, "--ids", ",".join(map(str, ids)),
                                     "--max-new-tokens", str(len(golden_greedy)), "--greedy", "--json",
                                     "--dump-logits", logits_path]).stdout
        lines = out.strip().splitlines()
        if len(lines) != 1:
            failures.append(f"{name} {partition}: {len(lines)} result lines (only rank 0 prints): {out!r}")
            continue
        greedy = json.loads(lines[0])["generated_ids"]
        logits = np.load(logits_path)
        err = float(np.abs(logits - golden_logits).max())
        print(f"{name} {partition}: max |dlogit| {err:.2e}, greedy {'matches' if greedy == golden_greedy else 'DIFFERS'}")
        if err > F32_TOLERANCE:
            failures.append(f"{name} {partition}: max |dlogit| {err:.3e} > {F32_TOLERANCE}")
        if greedy != golden_greedy:
            failures.append(f"{name} {partition}: greedy {greedy} != golden {golden_greedy}")
    return failures


def logits_and_greedy(cmd, logits_path):
    out = run(cmd).stdout.strip().splitlines()
    return np.load(logits_path), json.loads(out[-1])["generated_ids"], len(out)


def check_random(dsrt, seed, work):
    cfg = random_configs.make_config(seed)
    ckpt = os.path.join(work, f"random{seed}")
    config_path = os.path.join(work, f"random{seed}.json")
    with open(config_path, "w") as f:
        json.dump(cfg, f)
    run([dsrt, "synth", "--config", config_path, "--output", ckpt, "--seed", str(seed), "--no-tokenizer"])
    rng = np.random.default_rng(seed)
    ids = ",".join(str(i) for i in rng.integers(0, cfg["vocab_size"], size=7))
    prompt = ["--ids", ids, "--max-new-tokens", "6", "--greedy", "--json"]
    single = os.path.join(work, f"random{seed}.engine")
    run([dsrt, "build", "--checkpoint", ckpt, "--output", single, "--dtype", "f32"])
    want, want_greedy, _ = logits_and_greedy([dsrt, "run", single, "--dump-logits", single + ".npy"] + prompt,
                                             single + ".npy")
    partitions = []
    if cfg["num_attention_heads"] % 2 == 0:
        partitions.append("tp2")
    if cfg["n_routed_experts"] % 2 == 0:
        partitions.append("ep2")
    if len(partitions) == 2:
        partitions.append("tp2ep2")
    if "ep2" in partitions:
        partitions.append("ep2-alltoall")
    failures = []
    for partition in partitions:
        engine = os.path.join(work, f"random{seed}.{partition}.engine")
        run([dsrt, "build", "--checkpoint", ckpt, "--output", engine, "--dtype", "f32"] + PARTITIONS[partition])
        got, greedy, lines = logits_and_greedy(
            mpirun_prefix() + ["-n", "2", dsrt, "run", engine, "--dump-logits", engine + ".npy"] + prompt,
            engine + ".npy")
        err = float(np.abs(got - want).max())
        scale = max(1.0, float(np.abs(want).max()))
        print(f"random seed {seed} {partition}: max |dlogit| {err:.2e} (logits up to {scale:.1f}), greedy "
              f"{'matches' if greedy == want_greedy else 'DIFFERS'}")
        if err > 1e-4 * scale or lines != 1:
            failures.append(f"random seed {seed} {partition}: max |dlogit| {err:.3e}, {lines} result lines")
        if greedy != want_greedy:
            failures.append(f"random seed {seed} {partition}: greedy {greedy} != single-rank {want_greedy}")
    return failures


def expect_failure(what, cmd, needles):
    """The command must fail, and its stderr hold every needle."""
    proc = run(cmd, expect_ok=False)
    missing = [n for n in needles if proc.stderr.count(n[0]) < n[1]]
    print(f"{what}: exit {proc.returncode}")
    if proc.returncode == 0:
        return [f"{what}: succeeded"]
    return [f"{what}: stderr lacks {n[1]} x {n[0]!r}: {proc.stderr.strip()}" for n in missing]


def check_errors(dsrt, case_dir, work):
    tp2 = os.path.join(work, "errors.tp2.engine")
    ep2 = os.path.join(work, "errors.ep2.engine")
    run([dsrt, "build", "--checkpoint", case_dir, "--output", tp2, "--tp", "2"])
    run([dsrt, "build", "--checkpoint", case_dir, "--output", ep2, "--ep", "2"])
    prompt = ["--ids", "1,2,3", "--max-new-tokens", "2"]
    failures = []
    failures += expect_failure("world of 3 for a 2-rank engine",
                               mpirun_prefix() + ["-n", "3", dsrt, "run", tp2] + prompt,
                               [("was built for 2 ranks (--tp/--ep), but this run has 3", 3)])
    failures += expect_failure("one process for a 2-rank engine", [dsrt, "run", tp2] + prompt,
                               [("run it with mpirun -n 2", 1)])
    failures += expect_failure("ranks with different engine files",
                               mpirun_prefix() + ["-n", "1", dsrt, "run", tp2] + prompt +
                               [":", "-n", "1", dsrt, "run", ep2] + prompt,
                               [("the ranks opened different engine files", 1)])
    failures += expect_failure("a rank that cannot open its engine",
                               mpirun_prefix() + ["-n", "1", dsrt, "run", tp2] + prompt +
                               [":", "-n", "1", dsrt, "run", os.path.join(work, "missing.engine")] + prompt,
                               [("rank 1:", 1)])
    failures += expect_failure("a rank that dies",
                               mpirun_prefix() + ["-n", "1", dsrt, "run", tp2] + prompt + [":", "-n", "1", "false"],
                               [])
    return failures


def check_inspect(dsrt, case_dir, work):
    """Each rank's graph, with its collectives, in the pass dumps and in `dsrt inspect --rank`."""
    engine = os.path.join(work, "inspect.tp2.engine")
    dumps = os.path.join(work, "dumps")
    run([dsrt, "build", "--checkpoint", case_dir, "--output", engine, "--tp", "2", "--dump-dir", dumps])
    failures = []
    for rank in (0, 1):
        dump = os.path.join(dumps, f"rank{rank}", "03.after_partition.txt")
        text = open(dump).read() if os.path.exists(dump) else ""
        if "AllReduce(" not in text or f"rank={rank}" not in text:
            failures.append(f"{dump}: no AllReduce or rank={rank} in the partitioned graph")
        dot = os.path.join(work, f"r{rank}.dot")
        run([dsrt, "inspect", engine, "--rank", str(rank), "--dot", dot])
        if "AllReduce" not in open(dot).read() or "AllGather" not in open(dot).read():
            failures.append(f"inspect --rank {rank} --dot: no AllReduce/AllGather drawn")
    print(f"per-rank dumps and inspect --rank: {'ok' if not failures else 'FAILED'}")
    return failures


def processes_running(args):
    """Pids whose command line holds `args` one after another (procps may be absent)."""
    needle = "\0".join(args).encode()
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def check_serve(dsrt, case_dir, work):
    """`mpirun -n 2 dsrt serve` of a tp2+ep2 engine: rank 0 speaks HTTP, both ranks step;
    four concurrent greedy completions of the golden prompt give the golden continuation."""
    import serve_util  # noqa: E402 (the serve tests' helpers)
    ids, _, golden_greedy = golden_cases.load_case(case_dir)
    engine = os.path.join(work, "serve.tp2ep2.engine")
    run([dsrt, "build", "--checkpoint", case_dir, "--output", engine, "--dtype", "f32", "--tp", "2", "--ep", "2"])
    server = serve_util.Server(mpirun_prefix()[0], *mpirun_prefix()[1:], "-n", "2", dsrt, "serve", engine,
                               "--kv-cache-bytes", "8M", launcher=True)
    failures = []
    try:
        body = {"model": "serve.tp2ep2", "prompt": ids, "max_tokens": len(golden_greedy), "temperature": 0,
                "ignore_eos": True, "return_token_ids": True}
        results = [None] * 4

        def ask(i):
            results[i] = server.request("POST", "/v1/completions", body)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for status, answer in results:
            tokens = answer["choices"][0]["token_ids"] if status == 200 else answer
            if tokens != golden_greedy:
                failures.append(f"mpirun serve: {status} {tokens} != golden {golden_greedy}")
    finally:
        code = server.stop()  # mpirun ends the job on SIGTERM, with a status of its own
    left = processes_running(["serve", engine])
    if code is None or left:
        failures.append(f"mpirun serve: SIGTERM left it running (exit {code}, processes {left})")
    print(f"mpirun -n 2 dsrt serve: {'ok' if not failures else 'FAILED'}")
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsrt", required=True)
    parser.add_argument("--golden", default=golden_cases.DEFAULT_DIR)
    parser.add_argument("--random", type=int, default=8, help="randomized configurations (seeds 0..N-1)")
    args = parser.parse_args()
    cases = golden_cases.case_dirs(args.golden)
    if not cases:
        print(f"no golden cases under {args.golden}")
        return 1
    failures = []
    with tempfile.TemporaryDirectory() as work:
        for case in cases:
            try:
                failures += check_golden(args.dsrt, case, work)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                failures.append(str(e))
        for seed in range(args.random):
            try:
                failures += check_random(args.dsrt, seed, work)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                failures.append(str(e))
        try:
            failures += check_inspect(args.dsrt, cases[0], work)
            failures += check_serve(args.dsrt, cases[-1], work)
            failures += check_errors(args.dsrt, cases[0], work)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            failures.append(str(e))
    for f in failures:
        print("FAIL:", f)
    print(f"{len(failures)} failures")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
