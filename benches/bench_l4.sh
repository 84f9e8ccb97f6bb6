#!/bin/bash
# The README's performance table: bench-l4 engines (bf16, int8, int4, with and without a
# quantized LM head) at batch 1 and 16, side by side with ../shared/tools/stream.c in the
# same run. Prints one JSON object a line (dsrt bench --json plus "engine" and the stream
# figures taken just before it).
#
#   benches/bench_l4.sh [BUILD_DIR] [WORK_DIR]    # synthesizes and builds what is missing
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"
work="${2:-$here/out/bench-l4}"
dsrt="$build/tools/dsrt/dsrt"
mkdir -p "$work"
stream="$work/stream"
[ -x "$stream" ] || gcc -O3 -march=native -ffast-math -fopenmp "$here/../shared/tools/stream.c" -o "$stream"
[ -d "$work/ckpt" ] || "$dsrt" synth --preset bench-l4 --output "$work/ckpt" >&2

engine() {  # name, build flags...
  local name="$1"; shift
  [ -f "$work/$name.engine" ] || "$dsrt" build --checkpoint "$work/ckpt" --output "$work/$name.engine" "$@" >&2
  echo "$work/$name.engine"
}

bench() {  # engine name, bench flags...
  local name="$1"; shift
  local read_gbps
  read_gbps=$(OMP_NUM_THREADS=2 "$stream" | sed 's/.*"read_GBps": \([0-9.]*\).*/\1/')
  "$dsrt" bench "$work/$name.engine" --threads 2 --roofline --json "$@" 2>/dev/null |
    sed "s/^{/{\"engine\":\"$name\",\"stream_read_GBps\":$read_gbps,\"args\":\"$*\",/"
}

engine bf16 --dtype bf16 > /dev/null
engine int8 --dtype bf16 --weights int8 > /dev/null
engine int4 --dtype bf16 --weights int4 > /dev/null
engine int8-head --dtype bf16 --weights int8 --quantize-lm-head > /dev/null
engine int4-head --dtype bf16 --weights int4 --quantize-lm-head > /dev/null

bench bf16 --batch 1 --input-len 128 --output-len 64
bench bf16 --batch 1 --input-len 512 --output-len 2
bench bf16 --batch 16 --input-len 128 --output-len 32
for q in int8 int4 int8-head int4-head; do
  bench "$q" --batch 1 --input-len 128 --output-len 64
done
bench int4-head --batch 1 --input-len 512 --output-len 2
bench int8-head --batch 16 --input-len 128 --output-len 32
bench int4-head --batch 16 --input-len 128 --output-len 32
