#!/usr/bin/python3
"""TTFT of one long prompt that arrives while other streams decode, against a running
`dsrt serve` (issue 7's "512-token prompt while 15 streams decode").

Starts `--streams` streaming completions of `--stream-output` tokens, waits until each has
streamed its first token, then sends one `--prompt-len`-token prompt and measures the time
to its first streamed token, and the streams' inter-token latency before and while it is
prefilled. Prompts are random token ids (no prefix can be reused).

    benches/serve_ttft_under_load.py --url http://127.0.0.1:8000 [--streams 15] [--prompt-len 512]
"""

import argparse
import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse


def stream_completion(url, body, on_token):
    """POSTs a streaming completion; calls on_token(time) for every chunk with text or ids."""
    parts = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {response.read()!r}")
    for line in response:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("choices") and (chunk["choices"][0].get("token_ids") or chunk["choices"][0].get("text")):
            on_token(time.perf_counter())
    conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--streams", type=int, default=15)
    parser.add_argument("--stream-input", type=int, default=64)
    parser.add_argument("--stream-output", type=int, default=256)
    parser.add_argument("--prompt-len", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    parts = urllib.parse.urlparse(args.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    conn.request("GET", "/v1/models")
    model = json.loads(conn.getresponse().read())["data"][0]["id"]

    def body(length, output):
        return {"model": model, "prompt": [rng.randrange(args.vocab) for _ in range(length)], "max_tokens": output,
                "temperature": 0, "ignore_eos": True, "stream": True, "return_token_ids": True}

    times = [[] for _ in range(args.streams)]
    threads = [threading.Thread(target=stream_completion, args=(args.url, body(args.stream_input, args.stream_output),
                                                                 times[i].append)) for i in range(args.streams)]
    for t in threads:
        t.start()
    while min(len(t) for t in times) < 8:  # every stream decoding for a while
        time.sleep(0.05)
    sent = time.perf_counter()
    first = []
    stream_completion(args.url, body(args.prompt_len, 2), first.append)
    ttft = first[0] - sent
    done = time.perf_counter()
    for t in threads:
        t.join()

    def gaps(lo, hi):
        return [b - a for ts in times for a, b in zip(ts, ts[1:]) if lo <= a and b <= hi]

    before = gaps(0, sent)
    during = gaps(sent, done)
    print(json.dumps({"streams": args.streams, "prompt_len": args.prompt_len, "ttft_ms": round(ttft * 1e3, 1),
                      "stream_itl_ms_before": round(statistics.median(before) * 1e3, 1),
                      "stream_itl_ms_during": round(statistics.median(during) * 1e3, 1) if during else None,
                      "stream_itl_ms_max_during": round(max(during) * 1e3, 1) if during else None}))


if __name__ == "__main__":
    main()
