#!/usr/bin/env bash
# mbdata shard benchmark. Usage: bash Benchmarks/shard/run.sh
# Environment: N_CIFAR, N_TOKENS, MBDATA, WORK, RESULTS, DATASETS, CIFAR_INPUTS, BATCH_SIZE,
# EPOCHS, SEED, DEPTH, SHARD_ARGS, CEILING_MB, PREWARM, VERIFY, REINGEST, TIMEOUT, KEEP
# -- see Benchmarks/README.md ("Shard benchmark") or bench.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

source "$ROOT/Benchmarks/setup.sh"
bench_setup Benchmarks/shard/requirements.txt "import numpy, lz4.frame" time lz4

exec "$VENV/bin/python" "$ROOT/Benchmarks/shard/bench.py" "$@"
