#!/usr/bin/python3
"""`dsrt tokenize` against the golden tokenizer cases (--jsonl, with and without BOS) and
the golden conversations (--chat, through the chat template).

usage: tokenize_cli_test.py --dsrt BUILD/tools/dsrt/dsrt --tokenizer DIR [--golden DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile


def tokenize(dsrt, tokenizer, jsonl, no_special):
    cmd = [dsrt, "tokenize", "--tokenizer", tokenizer, "--jsonl", jsonl] + (["--no-special"] if no_special else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return [json.loads(line)["ids"] for line in proc.stdout.splitlines()]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsrt", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--golden", default=os.path.join(here, "..", "..", "shared", "golden", "tokenizer"))
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.tokenizer, "tokenizer.json")):
        print(f"no tokenizer.json in {args.tokenizer}: run scripts/setup")
        return 1
    cases = [json.loads(line) for line in open(os.path.join(args.golden, "cases.jsonl"), encoding="utf-8")]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for case in cases:
            f.write(json.dumps(case["text"]) + "\n")
        jsonl = f.name
    try:
        with_bos = tokenize(args.dsrt, args.tokenizer, jsonl, no_special=False)
        without = tokenize(args.dsrt, args.tokenizer, jsonl, no_special=True)
    finally:
        os.unlink(jsonl)
    passed = failed = 0
    for case, a, b in zip(cases, with_bos, without):
        if a == case["ids_with_special"] and b == case["ids_no_special"]:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {case['name']}")
    if len(with_bos) != len(cases):
        failed += 1
        print(f"FAIL: {len(with_bos)} results for {len(cases)} cases")

    # Conversations through the chat template: the rendered prompt and its ids.
    for line in open(os.path.join(args.golden, "chat.jsonl"), encoding="utf-8"):
        case = json.loads(line)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
            json.dump(case["messages"], f)
            messages = f.name
        cmd = [args.dsrt, "tokenize", "--tokenizer", args.tokenizer, "--chat", messages, "--json"]
        if case["add_generation_prompt"]:
            cmd.append("--add-generation-prompt")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        os.unlink(messages)
        out = json.loads(proc.stdout) if proc.returncode == 0 else {}
        if out.get("prompt") == case["prompt"] and out.get("ids") == case["ids"]:
            passed += 1
        else:
            failed += 1
            print(f"FAIL chat {case['name']}: {proc.stderr.strip() or out}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
