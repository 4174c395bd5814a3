#!/usr/bin/env bash
# mbdata ingest benchmark. Usage: bash Benchmarks/ingest/run.sh  (or: make bench-ingest)
# Environment: N, MBDATA, WORK, RESULTS, RUNS, BATCH_ROWS, MBDATA_ARGS, DD_MB,
# PREWARM, TIMEOUT, KEEP_DB -- see Benchmarks/README.md or bench.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

source "$ROOT/Benchmarks/setup.sh"
bench_setup Benchmarks/ingest/requirements.txt "import numpy" time

exec "$VENV/bin/python" "$ROOT/Benchmarks/ingest/bench.py" "$@"
