#!/usr/bin/env bash
# mbdata serve benchmark. Usage: bash Benchmarks/serve/run.sh  (or: make bench-serve)
# Environment: N, MBDATA, WORK, RESULTS, RUNS, WORKERS, CLIENTS, REPEATS, BATCH_SIZE, SEED,
# SERVE_ARGS, PROTOCOL_CHECK, PREWARM, TIMEOUT, KEEP, VENV -- see Benchmarks/README.md
# ("Serve benchmark") or bench.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

# torch goes into its own virtualenv (large); the client is installed into it from a copy
# of clients/python (so that the build leaves nothing in the source tree), again whenever
# the client's files change.
VENV="${VENV:-$ROOT/.venv-torch}"
WORK="${WORK:-$ROOT/Benchmarks/work/serve}"
case "$WORK" in /*) ;; *) WORK="$ROOT/$WORK" ;; esac
if [ ! -x "$VENV/bin/python" ]; then
  echo "[bench-serve] creating virtualenv $VENV" >&2
  "${PYTHON:-python3}" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import numpy, torch, lz4.frame" 2>/dev/null; then
  echo "[bench-serve] installing Benchmarks/serve/requirements.txt into $VENV (torch is large)" >&2
  "$VENV/bin/python" -m pip install --quiet -r Benchmarks/serve/requirements.txt
fi
source "$ROOT/Benchmarks/setup.sh"
bench_client "$VENV" "$WORK" bench-serve

if ! command -v /usr/bin/time >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y time || { $sudo apt-get update && $sudo apt-get install -y time; }
fi

exec "$VENV/bin/python" "$ROOT/Benchmarks/serve/bench.py" "$@"
