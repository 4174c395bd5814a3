#!/usr/bin/env bash
# mbdata packing benchmark (issue 14 §6). Usage: bash Benchmarks/packing/run.sh
# Environment: N, L, WINDOWS, BATCH, SEED, ROUNDS, MEDIAN, SIGMA, STEPS, GRAIN_BINS, MBDATA,
# DRIVER, WORK, RESULTS, TIMEOUT, KEEP -- see Benchmarks/README.md ("Packing benchmark") or bench.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

source "$ROOT/Benchmarks/setup.sh"
bench_setup Benchmarks/packing/requirements.txt "import numpy" time

# Grain goes into a virtualenv of its own under the work folder; when it does not install the
# report compares against the greedy bounds alone.
GRAIN_VENV="${WORK:-Benchmarks/work/packing}/venv-grain"
if ! "$GRAIN_VENV/bin/python" -c "import grain" 2>/dev/null; then
  echo "[bench-packing] installing Grain into $GRAIN_VENV" >&2
  { "${PYTHON:-python3}" -m venv "$GRAIN_VENV" \
      && "$GRAIN_VENV/bin/python" -m pip install --quiet -r Benchmarks/packing/requirements-grain.txt; } \
    || echo "[bench-packing] Grain did not install: only the bounds stand in for it" >&2
fi
export GRAIN_PYTHON="$GRAIN_VENV/bin/python"

exec "$VENV/bin/python" "$ROOT/Benchmarks/packing/bench.py" "$@"
