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
if [ -d clients/python ]; then
  mkdir -p "$WORK"
  stamp="$WORK/.client-installed"
  digest="$(cd clients/python && find . -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -path './build/*' \
    ! -path './.pytest_cache/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ] || ! "$VENV/bin/python" -c "import mbdata_client" 2>/dev/null; then
    echo "[bench-serve] installing clients/python into $VENV" >&2
    rm -rf "$WORK/client-src"
    mkdir -p "$WORK/client-src"
    (cd clients/python && tar --exclude=__pycache__ --exclude='*.egg-info' --exclude=./build -cf - .) | tar -C "$WORK/client-src" -xf -
    "$VENV/bin/python" -m pip install --quiet "$WORK/client-src"
    echo "$digest" > "$stamp"
  fi
else
  echo "[bench-serve] clients/python not found: the client configurations will fail" >&2
fi

if ! command -v /usr/bin/time >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y time || { $sudo apt-get update && $sudo apt-get install -y time; }
fi

exec "$VENV/bin/python" "$ROOT/Benchmarks/serve/bench.py" "$@"
