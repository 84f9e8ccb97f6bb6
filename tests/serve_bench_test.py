#!/usr/bin/python3
"""`dsrt bench-serve` against a tiny-v3 `dsrt serve`: at concurrency 1 and 2, four
requests of 16 random prompt ids and exactly 8 generated tokens each (ignore_eos), and
the numbers it reports must agree with each other and with the server's /metrics.
Then the failures a user meets: a server that is not there, a wrong API key, a model
the server does not serve, each one line naming the thing.

usage: serve_bench_test.py --dsrt BUILD/tools/dsrt/dsrt
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

from serve_util import build_tiny_engine, Checks, dsrt_from_args, serving

KEY = "bench-secret"
LEVELS, PROMPTS, INPUT_LEN, OUTPUT_LEN = [1, 2], 4, 16, 8
LATENCIES = ["ttft", "tpot", "itl", "e2el"]


def bench_serve(binary, url, *extra):
    proc = subprocess.run([binary, "bench-serve", "--url", url, *extra], capture_output=True, timeout=60)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode(errors="replace")


def close(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-9)


def check_level(checks, r, level):
    name = f"concurrency {level}"
    checks.expect(f"{name}: 4 completed, none failed", r["concurrency"] == level and r["completed"] == PROMPTS
                  and r["failed"] == 0, r)
    checks.expect(f"{name}: usage counts 4 x 16 prompt and exactly 4 x 8 generated tokens (ignore_eos)",
                  r["total_input_tokens"] == PROMPTS * INPUT_LEN and r["total_output_tokens"] == PROMPTS * OUTPUT_LEN, r)
    d = r["duration_s"]
    checks.expect(f"{name}: throughputs are the counts over the duration", d > 0
                  and close(r["request_throughput"], PROMPTS / d)
                  and close(r["output_throughput"], PROMPTS * OUTPUT_LEN / d)
                  and close(r["total_token_throughput"], PROMPTS * (INPUT_LEN + OUTPUT_LEN) / d), r)
    for kind in LATENCIES:
        mean, median, p99 = r[f"mean_{kind}_ms"], r[f"median_{kind}_ms"], r[f"p99_{kind}_ms"]
        checks.expect(f"{name}: {kind} is positive and p99 >= median", mean > 0 and median > 0 and p99 >= median,
                      (mean, median, p99))
    checks.expect(f"{name}: a request's latency covers its TTFT", r["mean_e2el_ms"] > r["mean_ttft_ms"]
                  and r["p99_e2el_ms"] >= r["median_ttft_ms"], r)
    # Every request generated 8 tokens, so mean TPOT = (mean E2EL - mean TTFT) / 7.
    checks.expect(f"{name}: mean TPOT = (mean E2EL - mean TTFT) / 7",
                  close(r["mean_tpot_ms"], (r["mean_e2el_ms"] - r["mean_ttft_ms"]) / (OUTPUT_LEN - 1), 1e-6), r)
    checks.expect(f"{name}: the run lasted at least the slowest request", d * 1e3 >= r["p99_e2el_ms"], r)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_failures(checks, binary, server, url):
    def one_line_error(name, argv, words):
        rc, out, err = bench_serve(binary, *argv)
        checks.expect(name, rc != 0 and not out and err.count("\n") == 1 and all(w in err for w in words), (rc, err))

    nowhere = f"http://127.0.0.1:{free_port()}"
    one_line_error("no server there: one line naming the URL", [nowhere], [f"cannot reach the server at {nowhere}"])
    one_line_error("no API key: one line with the 401", [url], ["HTTP 401", "API key"])
    one_line_error("an unknown model: one line naming what is served", [url, "--api-key", KEY, "--model", "nope"],
                   ["no model 'nope'", "tiny"])
    one_line_error("too long for the model: one line naming max_model_len",
                   [url, "--api-key", KEY, "--input-len", "1000", "--output-len", "8"], ["max_model_len"])
    one_line_error("a URL without a scheme", ["127.0.0.1:8000"], ["must start with http://"])
    status, body = server.request("POST", "/v1/completions", {"prompt": [1, 2], "ignore_eos": "yes"},
                                  headers={"Authorization": f"Bearer {KEY}"})
    checks.expect("the server refuses a non-boolean ignore_eos, naming it",
                  status == 400 and body["error"]["param"] == "ignore_eos", (status, body))


def main():
    binary = dsrt_from_args()
    checks = Checks()
    with tempfile.TemporaryDirectory() as work:
        engine = build_tiny_engine(binary, work)
        with serving(checks, binary, engine, "--max-batch", "4", "--threads", "1", "--api-key", KEY) as server:
            url = f"http://{server.host}:{server.port}"
            rc, out, err = bench_serve(binary, url, "--api-key", KEY, "--concurrency", ",".join(map(str, LEVELS)),
                                       "--num-prompts", str(PROMPTS), "--input-len", str(INPUT_LEN),
                                       "--output-len", str(OUTPUT_LEN), "--seed", "1", "--json")
            lines = out.splitlines()
            checks.expect("bench-serve --json prints one object per level", rc == 0 and len(lines) == len(LEVELS),
                          (rc, out, err))
            if rc == 0 and len(lines) == len(LEVELS):
                for line, level in zip(lines, LEVELS):
                    check_level(checks, json.loads(line), level)
            checks.expect("progress went to stderr", "concurrency 2" in err, err)
            m = server.wait_idle()
            runs = len(LEVELS) * PROMPTS
            checks.expect("the server saw every token the benchmark counted",
                          m["dsrt_generation_tokens_total"] == runs * OUTPUT_LEN
                          and m["dsrt_prompt_tokens_total"] == runs * INPUT_LEN
                          and m['dsrt_requests_finished_total{reason="length"}'] == runs, m)
            check_failures(checks, binary, server, url)
    return checks.exit_code()


if __name__ == "__main__":
    sys.exit(main())
