#!/bin/bash
# Partitioned bench-l4 bf16 engines on this machine, one core a rank: tp1 (one process,
# 1 and 2 threads) against tp2, ep2 and ep2 with --moe-combine alltoall under
# `mpirun -n 2` (1 thread a rank). Prints one JSON object a line (dsrt bench --json from
# rank 0 plus "engine", "ranks" and "threads"); each configuration is run `rounds` times,
# interleaved, so that the machine's drift hits them all alike.
#
#   benches/bench_partition.sh [BUILD_DIR] [WORK_DIR] [ROUNDS]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"
work="${2:-$here/out/bench-l4}"
rounds="${3:-2}"
dsrt="$build/tools/dsrt/dsrt"
mkdir -p "$work"
[ -d "$work/ckpt" ] || "$dsrt" synth --preset bench-l4 --output "$work/ckpt" >&2
mpirun=(mpirun --oversubscribe --bind-to core --mca btl_vader_single_copy_mechanism none)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)

engine() {  # name, build flags...
  local name="$1"; shift
  [ -f "$work/$name.engine" ] || "$dsrt" build --checkpoint "$work/ckpt" --output "$work/$name.engine" "$@" >&2
}

bench() {  # engine name, ranks, threads a rank, bench flags...
  local name="$1" ranks="$2" threads="$3"; shift 3
  local launch=("$dsrt")
  [ "$ranks" -gt 1 ] && launch=("${mpirun[@]}" -n "$ranks" "$dsrt")
  "${launch[@]}" bench "$work/$name.engine" --threads "$threads" --json "$@" 2>/dev/null |
    sed "s/^{/{\"engine\":\"$name\",\"ranks\":$ranks,\"threads\":$threads,\"args\":\"$*\",/"
}

engine bf16 --dtype bf16
engine bf16-tp2 --dtype bf16 --tp 2
engine bf16-ep2 --dtype bf16 --ep 2
engine bf16-ep2-alltoall --dtype bf16 --ep 2 --moe-combine alltoall

for ((round = 0; round < rounds; ++round)); do
  for shape in "--input-len 128 --output-len 64" "--input-len 512 --output-len 2"; do
    bench bf16 1 1 $shape
    bench bf16 1 2 $shape
    bench bf16-tp2 2 1 $shape
    bench bf16-ep2 2 1 $shape
    bench bf16-ep2-alltoall 2 1 $shape
  done
done
