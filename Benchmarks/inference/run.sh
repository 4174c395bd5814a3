#!/usr/bin/env bash
# mbdata inference write-back benchmark. Usage: bash Benchmarks/inference/run.sh  (or: make bench-infer)
# Needs the release builds of mbdata and mbdata-infer-bench (make release).
# Environment: N, MBDATA, BENCH_BIN, WORK, RESULTS, README_APPEND, SHAPES, RUNS, REPEATS, BATCH_SIZE,
# READ_K, PEER_SYNC, SERVE_ARGS, TIMEOUT, KEEP, FLOOR_BIN -- see Benchmarks/README.md ("Inference write-back")
# or bench.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

WORK="${WORK:-$ROOT/Benchmarks/work/inference}"
case "$WORK" in /*) ;; *) WORK="$ROOT/$WORK" ;; esac
export WORK

source "$ROOT/Benchmarks/setup.sh"
bench_setup Benchmarks/inference/requirements.txt "import numpy, lz4.frame, safetensors, xxhash" time
bench_client "$VENV" "$WORK" bench-infer

# The write floor's program (sqlite_floor.c), rebuilt when its source changes.
FLOOR_SRC="$ROOT/Benchmarks/inference/sqlite_floor.c"
FLOOR_BIN="${FLOOR_BIN:-$WORK/sqlite-floor}"
if [ ! -x "$FLOOR_BIN" ] || [ "$FLOOR_SRC" -nt "$FLOOR_BIN" ]; then
  mkdir -p "$(dirname "$FLOOR_BIN")"
  gcc -O2 -Wall -Wextra -o "$FLOOR_BIN" "$FLOOR_SRC" -lsqlite3 -lpthread
fi
export FLOOR_BIN

exec "$VENV/bin/python" "$ROOT/Benchmarks/inference/bench.py" "$@"
