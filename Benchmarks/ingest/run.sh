#!/usr/bin/env bash
# mbdata ingest benchmark. Usage: bash Benchmarks/ingest/run.sh  (or: make bench-ingest)
# Environment: N, MBDATA, WORK, RESULTS, RUNS, BATCH_ROWS, MBDATA_ARGS, DD_MB,
# PREWARM, TIMEOUT, KEEP_DB -- see Benchmarks/README.md or bench.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

VENV="$ROOT/Benchmarks/.venv-bench"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[run.sh] creating virtualenv $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import numpy' 2>/dev/null; then
  echo "[run.sh] installing Python requirements into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet -r Benchmarks/ingest/requirements.txt
fi

if [ ! -x /usr/bin/time ]; then
  echo "[run.sh] installing GNU time (apt-get install -y time)" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get install -y time || { $SUDO apt-get update && $SUDO apt-get install -y time; }
fi

exec "$VENV/bin/python" "$ROOT/Benchmarks/ingest/bench.py" "$@"
