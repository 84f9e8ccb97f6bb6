#!/usr/bin/python3
"""At temperature 0 `dsrt serve` answers a chat prompt with the tokens of
`dsrt run --chat --greedy`: alone, and while 15 other streams decode in the same batch.

Batching changes which GEMM shapes (and which expert groups) a token goes through, so
float rounding may differ; a token may then differ only where the two best logits
nearly tie. Where the server's tokens differ, the test measures the margin between
the two candidates on run's logits at that position and requires it to be tiny.

usage: serve_parity_test.py --dsrt BUILD/tools/dsrt/dsrt
"""

import os
import sys
import tempfile
import threading
import time

import numpy as np

from serve_util import build_demo_engine, Checks, dsrt, dsrt_from_args, serving
import json

PROMPTS = ["Write one sentence about the sea.", "Hello", "什么是机器学习？请简单回答。"]
MAX_TOKENS = 16
NEAR_TIE = 0.05  # logits; the random demo model's top logits sit ~1 apart


def run_greedy(binary, engine, prompt):
    out = dsrt(binary, "run", engine, "--prompt", prompt, "--chat", "--greedy", "--max-new-tokens",
               str(MAX_TOKENS), "--json", "--threads", "2")
    result = json.loads(out)
    return result["prompt_ids"], result["generated_ids"]


def serve_greedy(server, prompt):
    status, body = server.request("POST", "/v1/chat/completions", {
        "messages": [{"role": "user", "content": prompt}], "max_tokens": MAX_TOKENS, "temperature": 0,
        "return_token_ids": True})
    assert status == 200, body
    return body["choices"][0]["token_ids"]


def margin_at_divergence(binary, engine, work, prompt_ids, ran, served):
    """Index of the first differing token and run's logit margin between the two choices there."""
    k = next(i for i in range(min(len(ran), len(served))) if ran[i] != served[i])
    npy = os.path.join(work, "logits.npy")
    ids = ",".join(str(t) for t in prompt_ids + ran[:k])
    dsrt(binary, "run", engine, "--ids", ids, "--greedy", "--max-new-tokens", "1", "--dump-logits", npy,
         "--threads", "2")
    last = np.load(npy)[-1]
    return k, float(last[ran[k]] - last[served[k]])


def chat_turn(server, messages):
    status, body = server.request("POST", "/v1/chat/completions", {
        "messages": messages, "max_tokens": 8, "temperature": 0})
    assert status == 200, body
    return body["choices"][0]["message"]["content"], body["usage"]["prompt_tokens"]


def check_next_turn_reuses_pages(checks, server):
    """A chat continued one turn later: its prompt starts with the previous one, whose
    full KV pages (16 tokens each) the server finds in its prefix cache."""
    history = [{"role": "user", "content": "Tell me about the sea and the ships on it. " * 6}]
    answer, first_prompt = chat_turn(server, history)
    before = server.metrics()
    history += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And the harbours?"}]
    _, second_prompt = chat_turn(server, history)
    after = server.metrics()
    hits = after["dsrt_prefix_cache_hits_total"] - before["dsrt_prefix_cache_hits_total"]
    prefilled = after["dsrt_prefill_tokens_total"] - before["dsrt_prefill_tokens_total"]
    checks.expect("the next chat turn reuses at least the previous prompt's full pages",
                  hits >= first_prompt // 16 * 16 > 0 and prefilled == second_prompt - hits,
                  (first_prompt, second_prompt, hits, prefilled))


class Background:
    """A streaming request that keeps decoding until told to stop, noting when events arrive."""

    def __init__(self, server, index, stop):
        self.times = []
        self.thread = threading.Thread(target=self.run, args=(server, index, stop), daemon=True)
        self.thread.start()

    def run(self, server, index, stop):
        conn = server.connection()
        body = {"prompt": f"Background story number {index}: once upon a time", "max_tokens": 400,
                "temperature": 0.9, "top_k": 50, "seed": index, "stream": True}
        conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        while response.read1(65536):
            self.times.append(time.time())
            if stop.is_set():
                break
        conn.close()  # the server cancels the request


def main():
    binary = dsrt_from_args()
    checks = Checks()
    with tempfile.TemporaryDirectory() as work:
        engine = build_demo_engine(binary, work)
        expected = {p: run_greedy(binary, engine, p) for p in PROMPTS}
        with serving(checks, binary, engine, "--max-batch", "16", "--kv-cache-bytes", "256M", "--threads", "2") as server:
            def compare(name, prompt, served):
                prompt_ids, ran = expected[prompt]
                if served == ran:
                    checks.expect(f"{name}: {prompt!r} gives run's {len(ran)} tokens", True)
                    return
                k, margin = margin_at_divergence(binary, engine, work, prompt_ids, ran, served)
                print(f"     {name}: {prompt!r} differs at token {k}: run {ran[k]}, serve {served[k]}, "
                      f"logit margin on run's logits {margin:.5f}")
                checks.expect(f"{name}: {prompt!r} differs only at a near-tie", abs(margin) <= NEAR_TIE,
                              f"margin {margin}")

            for prompt in PROMPTS:
                compare("alone", prompt, serve_greedy(server, prompt))
            check_next_turn_reuses_pages(checks, server)

            for prompt in PROMPTS:
                server.wait_idle()  # the previous round's streams are cancelled
                stop = threading.Event()
                background = [Background(server, i, stop) for i in range(15)]
                deadline = time.time() + 60
                while not all(b.times for b in background) and time.time() < deadline:
                    time.sleep(0.02)
                started = time.time()
                served = serve_greedy(server, prompt)
                finished = time.time()
                time.sleep(0.2)
                stop.set()
                for b in background:
                    b.thread.join(timeout=60)
                busy = sum(1 for b in background if any(t < started for t in b.times) and any(t > finished for t in b.times))
                checks.expect(f"15 streams decoded throughout the request for {prompt!r}", busy == 15, f"{busy} of 15")
                compare("with 15 others", prompt, served)
            m = server.wait_idle()
            checks.expect("every page is free at the end", m["dsrt_kv_pages_used"] == 0, m)
            checks.expect("the disconnected streams were cancelled",
                          m['dsrt_requests_finished_total{reason="cancelled"}'] == 45, m)
    return checks.exit_code()


if __name__ == "__main__":
    sys.exit(main())
