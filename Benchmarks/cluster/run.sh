#!/usr/bin/env bash
# mbdata cluster benchmark (issue 13). Usage: bash Benchmarks/cluster/run.sh  (or: make bench-cluster)
# Needs the release build of mbdata (make release), PostgreSQL and nginx (make deps installs them).
# Environment: N, MBDATA, WORK, RESULTS, REPEATS, GROUPS, RUNS, README_APPEND, TIMEOUT -- see bench.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

WORK="${WORK:-$ROOT/Benchmarks/work/cluster}"
case "$WORK" in /*) ;; *) WORK="$ROOT/$WORK" ;; esac
export WORK

source "$ROOT/Benchmarks/setup.sh"
bench_setup Benchmarks/cluster/requirements.txt "import numpy, lz4.frame, safetensors, xxhash"
bench_client "$VENV" "$WORK" bench-cluster

exec "$VENV/bin/python" "$ROOT/Benchmarks/cluster/bench.py" "$@"
