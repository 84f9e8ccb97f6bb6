#!/usr/bin/python3
"""Bad input gets one clear error and a non-zero exit, never a crash.

Each case breaks one thing (a checkpoint tensor, the config, an engine file, the
prompt) and checks that dsrt exits with status 1 and a one-line message naming
the thing.

usage: cli_errors_test.py --dsrt BUILD/tools/dsrt/dsrt
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile


def dsrt(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return header, data


def write_safetensors(path, header, data):
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + data)


def edit_header(checkpoint, edit):
    path = os.path.join(checkpoint, "model.safetensors")
    header, data = read_safetensors(path)
    edit(header)
    write_safetensors(path, header, data)


def set_float32(checkpoint, tensor, value):
    path = os.path.join(checkpoint, "model.safetensors")
    header, data = read_safetensors(path)
    begin = header[tensor]["data_offsets"][0]
    data = data[:begin] + struct.pack("<f", value) + data[begin + 4:]
    write_safetensors(path, header, data)


def truncate(path, keep_fraction):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep_fraction))


def flip_bit(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))


class Suite:
    def __init__(self, binary, work):
        self.binary, self.work = binary, work
        self.passed = self.failed = 0
        self.base = os.path.join(work, "base")
        self.v3 = os.path.join(work, "v3")
        self.must_succeed("synth", "--preset", "tiny-v2-lite", "--output", self.base, "--seed", "7")
        self.must_succeed("synth", "--preset", "tiny-v3", "--output", self.v3, "--seed", "7")
        self.engine = os.path.join(work, "good.engine")
        self.must_succeed("build", "--checkpoint", self.base, "--output", self.engine, "--dtype", "f32")

    def must_succeed(self, *args):
        proc = dsrt(self.binary, *args)
        if proc.returncode != 0:
            raise RuntimeError(f"dsrt {' '.join(args)} failed: {proc.stderr}")

    def copy(self, source, name):
        target = os.path.join(self.work, name)
        shutil.copytree(source, target)
        return target

    def copy_engine(self, name):
        target = os.path.join(self.work, name)
        shutil.copy(self.engine, target)
        return target

    def expect_error(self, name, args, *needles):
        proc = dsrt(self.binary, *args)
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        problems = []
        if proc.returncode != 1:
            problems.append(f"exit status {proc.returncode} (want 1)")
        if not lines or not lines[-1].startswith("dsrt: error: "):
            problems.append(f"no 'dsrt: error:' line in stderr {proc.stderr!r}")
        for needle in needles:
            if needle not in proc.stderr:
                problems.append(f"message lacks {needle!r}")
        if problems:
            self.failed += 1
            print(f"FAIL {name}: {'; '.join(problems)}\n  stderr: {proc.stderr.strip()}")
        else:
            self.passed += 1
            print(f"ok   {name}: {lines[-1]}")

    def build_args(self, checkpoint, name="x.engine"):
        return ["build", "--checkpoint", checkpoint, "--output", os.path.join(self.work, name), "--dtype", "f32"]

    def run_all(self):
        ckpt = self.copy(self.base, "missing_tensor")
        edit_header(ckpt, lambda h: h.pop("model.layers.1.self_attn.kv_b_proj.weight"))
        self.expect_error("missing tensor", self.build_args(ckpt), "model.layers.1.self_attn.kv_b_proj.weight")

        ckpt = self.copy(self.base, "wrong_shape")
        def transpose(h):
            h["model.layers.0.mlp.down_proj.weight"]["shape"].reverse()
        edit_header(ckpt, transpose)
        self.expect_error("tensor of the wrong shape", self.build_args(ckpt), "model.layers.0.mlp.down_proj.weight")

        ckpt = self.copy(self.base, "llama")
        config = json.load(open(os.path.join(ckpt, "config.json")))
        config["model_type"] = "llama"
        json.dump(config, open(os.path.join(ckpt, "config.json"), "w"))
        self.expect_error("unsupported model_type", self.build_args(ckpt), "llama")

        ckpt = self.copy(self.base, "truncated_safetensors")
        truncate(os.path.join(ckpt, "model.safetensors"), 0.5)
        self.expect_error("truncated safetensors", self.build_args(ckpt), "model.safetensors")

        ckpt = self.copy(self.v3, "nan_bias")
        set_float32(ckpt, "model.layers.1.mlp.gate.e_score_correction_bias", float("nan"))
        self.expect_error("NaN router bias", self.build_args(ckpt), "model.layers.1.mlp.gate.e_score_correction_bias")

        self.expect_error("missing checkpoint", self.build_args(os.path.join(self.work, "nowhere")), "nowhere")

        engine = self.copy_engine("truncated.engine")
        truncate(engine, 0.6)
        self.expect_error("truncated engine", ["run", engine, "--ids", "1,2"], "truncated")

        engine = self.copy_engine("flipped_proto.engine")
        flip_bit(engine, 200)
        self.expect_error("bit flip in the engine's metadata", ["run", engine, "--ids", "1,2"], "checksum")

        engine = self.copy_engine("flipped_weight.engine")
        flip_bit(engine, os.path.getsize(engine) - 100)
        self.expect_error("bit flip in a weight", ["run", engine, "--ids", "1,2"], "checksum")

        not_engine = os.path.join(self.work, "config.engine")
        shutil.copy(os.path.join(self.base, "config.json"), not_engine)
        self.expect_error("not an engine", ["run", not_engine, "--ids", "1"], "not a dsrt engine")

        self.expect_error("token id outside the vocabulary", ["run", self.engine, "--ids", "3,999999"], "999999")
        self.expect_error("negative token id", ["run", self.engine, "--ids", "-4"], "-4")
        self.expect_error("malformed ids", ["run", self.engine, "--ids", "1,x"], "'x'")

        short = os.path.join(self.work, "short.engine")
        self.must_succeed("build", "--checkpoint", self.base, "--output", short, "--dtype", "f32", "--max-seq-len", "8")
        self.expect_error("prompt longer than --max-seq-len", ["run", short, "--ids", ",".join(["5"] * 12)],
                          "max sequence length 8")

        self.expect_error("bench longer than --max-seq-len",
                          ["bench", short, "--input-len", "6", "--output-len", "4"], "max sequence length 8")
        self.expect_error("unknown backend", ["run", self.engine, "--ids", "1", "--backend", "gpu"], "gpu")
        self.expect_error("--quantize-lm-head without int weights",
                          self.build_args(self.base) + ["--quantize-lm-head"], "--quantize-lm-head")
        self.expect_error("an LM head scheme that is not int8 or int4",
                          self.build_args(self.base) + ["--weights", "int4", "--lm-head-weights", "int3"], "int3")

        odd_groups = os.path.join(self.work, "g6.engine")
        self.must_succeed("build", "--checkpoint", self.base, "--output", odd_groups, "--dtype", "f32",
                          "--weights", "int8", "--quant-group-size", "6")
        self.expect_error("quantization groups the oneDNN kernels cannot step through",
                          ["run", odd_groups, "--ids", "1,2", "--backend", "onednn"], "groups of 6")

        self.expect_error("unknown pass", self.build_args(self.base) + ["--disable-pass", "no-such-pass"], "no-such-pass")
        self.expect_error("unknown preset", ["synth", "--preset", "gpt5", "--output", os.path.join(self.work, "g")], "gpt5")
        self.expect_error("inspect of a missing engine", ["inspect", os.path.join(self.work, "none.engine")], "none.engine")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsrt", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        suite = Suite(os.path.abspath(args.dsrt), work)
        suite.run_all()
    print(f"{suite.passed} passed, {suite.failed} failed")
    return 0 if suite.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
