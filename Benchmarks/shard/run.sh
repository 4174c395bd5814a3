#!/usr/bin/env bash
# mbdata shard benchmark. Usage: bash Benchmarks/shard/run.sh
# Environment: N_CIFAR, N_TOKENS, MBDATA, WORK, RESULTS, DATASETS, CIFAR_INPUTS, BATCH_SIZE,
# EPOCHS, SEED, DEPTH, SHARD_ARGS, CEILING_MB, PREWARM, VERIFY, REINGEST, TIMEOUT, KEEP
# -- see Benchmarks/README.md ("Shard benchmark") or bench.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

VENV="$ROOT/Benchmarks/.venv-bench"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[run.sh] creating virtualenv $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import numpy, lz4.frame' 2>/dev/null; then
  echo "[run.sh] installing Python requirements into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet -r Benchmarks/shard/requirements.txt
fi

missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v lz4 >/dev/null 2>&1 || missing+=(lz4)
if [ ${#missing[@]} -gt 0 ]; then
  echo "[run.sh] installing ${missing[*]} (apt-get install -y ${missing[*]})" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get install -y "${missing[@]}" || { $SUDO apt-get update && $SUDO apt-get install -y "${missing[@]}"; }
fi

exec "$VENV/bin/python" "$ROOT/Benchmarks/shard/bench.py" "$@"
