#!/usr/bin/python3
"""A bounded load test of `dsrt serve`: 64 requests, 16 at a time (then the same again), mixing streaming and
non-streaming chat and completions, malformed and unsupported requests, and clients
that disconnect mid-stream. The KV cache is kept small (1 MB: about 60 pages of 16
tokens) so that requests queue for pages and get preempted. Every well-formed request
must complete with a well-formed answer, every bad one must get a 4xx in OpenAI's
error shape, nothing may hang, and at the end no request runs, no page is held and the
server's resident memory is where it was after the first round.

usage: serve_load_test.py --dsrt BUILD/tools/dsrt/dsrt
"""

import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile

from serve_util import build_demo_engine, Checks, dsrt_from_args, parse_events, Server

REQUESTS = 64
CONCURRENCY = 16
KINDS = 8


def is_api_error(body, param=None):
    return (isinstance(body, dict) and set(body.get("error", {})) == {"message", "type", "param", "code"}
            and (param is None or body["error"]["param"] == param))


def chat_greedy(server, i):
    status, body = server.request("POST", "/v1/chat/completions", {
        "model": "m", "messages": [{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}],
        "max_tokens": 8, "temperature": 0})
    choice = body["choices"][0] if status == 200 else {}
    ok = (status == 200 and body["object"] == "chat.completion" and isinstance(choice["message"]["content"], str)
          and body["usage"]["completion_tokens"] == (8 if choice["finish_reason"] == "length" else
                                                     body["usage"]["completion_tokens"])
          and choice["finish_reason"] in ("stop", "length"))
    return ok, (status, body)


def completion_stream(server, i):
    events = server.stream("/v1/completions", {
        "model": "m", "prompt": f"Story {i}: the river", "max_tokens": 12, "temperature": 0.7, "top_k": 40,
        "seed": i, "stream": True, "stream_options": {"include_usage": True}})
    chunks, done = parse_events(events)
    usage = chunks[-1]["usage"] if chunks else None
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    ok = (done and usage is not None and finish in (["length"], ["stop"])
          and (usage["completion_tokens"] == 12 or finish == ["stop"])
          and all(c["object"] == "text_completion" for c in chunks))
    return ok, (finish, usage, text)


def malformed_json(server, i):
    status, body = server.request("POST", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": ')
    return status == 400 and is_api_error(body), (status, body)


def wrong_type(server, i):
    status, body = server.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": "ten"})
    return status == 400 and is_api_error(body, "max_tokens"), (status, body)


def disconnect_mid_stream(server, i):
    events = server.stream("/v1/chat/completions", {
        "messages": [{"role": "user", "content": f"Tell me a long story, number {i}."}], "max_tokens": 300,
        "temperature": 0, "stream": True}, stop_after=3)
    chunks, _ = parse_events(events)
    return len(chunks) == 3, len(chunks)


def prompt_too_long(server, i):
    status, body = server.request("POST", "/v1/completions", {"prompt": [5] * 700, "max_tokens": 4})
    return status == 400 and is_api_error(body, "prompt") and "640" in body["error"]["message"], (status, body)


def completion_ids(server, i):
    status, body = server.request("POST", "/v1/completions", {
        "prompt": [0, 100 + i, 200 + i, 300 + i], "max_tokens": 12, "temperature": 0, "return_token_ids": True})
    choice = body["choices"][0] if status == 200 else {}
    ok = (status == 200 and body["usage"]["prompt_tokens"] == 4
          and len(choice["token_ids"]) == body["usage"]["completion_tokens"]
          and (choice["finish_reason"] == "stop" or body["usage"]["completion_tokens"] == 12))
    return ok, (status, body)


def unsupported_field(server, i):
    status, body = server.request("POST", "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "hi"}], "logprobs": True, "max_tokens": 4})
    return status == 400 and is_api_error(body, "logprobs"), (status, body)


CASES = [chat_greedy, completion_stream, malformed_json, wrong_type, disconnect_mid_stream, prompt_too_long,
         completion_ids, unsupported_field]


def resident_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def sanitized(binary):
    """Whether the binary was built with AddressSanitizer."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def run_one(server, i):
    case = CASES[i % KINDS]
    try:
        ok, detail = case(server, i)
    except Exception as e:  # a hang (socket timeout) or a broken answer
        ok, detail = False, repr(e)
    return case.__name__, ok, detail


def main():
    binary = dsrt_from_args()
    checks = Checks()
    with tempfile.TemporaryDirectory() as work:
        engine = build_demo_engine(binary, work)
        missing = os.path.join(work, "no-such.engine")
        for argv, words in [([engine, "--kv-cache-bytes", "lots"], "--kv-cache-bytes: 'lots' is not a byte size"),
                            ([engine, "--kv-cache-bytes", "100"], "holds no page"),
                            ([missing], "no-such.engine")]:
            proc = subprocess.run([binary, "serve", *argv], capture_output=True, timeout=120)
            err = proc.stderr.decode(errors="replace")
            checks.expect(f"serve {' '.join(argv[1:]) or os.path.basename(argv[0])} fails with one line naming it",
                          proc.returncode != 0 and words in err and err.count("\n") == 1, (proc.returncode, err))
        server = Server(binary, engine, "--max-batch", "16", "--kv-cache-bytes", "1M", "--threads", "2")
        try:
            with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
                results = list(pool.map(lambda i: run_one(server, i), range(REQUESTS)))
            # The same load again: memory a request keeps would show as growth between rounds.
            # A few MiB do come and stay: a oneDNN primitive for each step size first seen
            # and the malloc arenas of HTTP threads first used (LeakSanitizer, in the
            # sanitizer run, is the exact check).
            server.wait_idle()
            baseline = resident_bytes(server.proc.pid)
            with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
                results += list(pool.map(lambda i: run_one(server, i), range(REQUESTS)))
            server.wait_idle()
            grown = resident_bytes(server.proc.pid) - baseline
            if sanitized(binary):  # ASan keeps freed memory in quarantine; its leak check runs at exit
                print(f"skip memory baseline under AddressSanitizer ({grown / 2**20:+.1f} MiB)")
            else:
                checks.expect(f"memory returns to its baseline after a second round ({grown / 2**20:+.1f} MiB)",
                              grown < 32 << 20, grown)
            for kind in CASES:
                mine = [r for r in results if r[0] == kind.__name__]
                bad = [r[2] for r in mine if not r[1]]
                checks.expect(f"{kind.__name__}: {len(mine) - len(bad)} of {len(mine)} as expected", not bad,
                              str(bad[:2])[:2000])

            big = b'{"prompt": "' + b"a" * (9 << 20) + b'"}'
            status, body = server.request("POST", "/v1/completions", big)
            checks.expect("a 9 MB body gets a 413 in OpenAI's error shape", status == 413 and is_api_error(body),
                          (status, str(body)[:300]))
            status, body = server.request("GET", "/v1/nothing")
            checks.expect("an unknown path gets a 404 in OpenAI's error shape", status == 404 and is_api_error(body),
                          (status, body))

            m = server.wait_idle()
            checks.expect("at the end no request runs or waits and no KV page is held",
                          m["dsrt_requests_running"] == 0 and m["dsrt_requests_waiting"] == 0
                          and m["dsrt_kv_pages_used"] == 0, m)
            checks.expect("every disconnected stream was cancelled",
                          m['dsrt_requests_finished_total{reason="cancelled"}'] == 2 * REQUESTS // KINDS, m)
            checks.expect("no request ended in an error", m['dsrt_requests_finished_total{reason="error"}'] == 0, m)
            served = 2 * REQUESTS // KINDS * 4
            checks.expect("every well-formed request was admitted once",
                          m["dsrt_time_to_first_token_seconds_count"] == served, m)
            ok, detail = chat_greedy(server, 0)
            checks.expect("the server still answers afterwards", ok, detail)
        finally:
            code = server.stop()
        checks.expect("SIGTERM shuts the server down cleanly", code == 0, f"exit code {code}")
        if checks.failed:
            print("server stderr:", b"".join(server.stderr).decode(errors="replace")[-3000:])
    return checks.exit_code()


if __name__ == "__main__":
    sys.exit(main())
