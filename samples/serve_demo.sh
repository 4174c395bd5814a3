#!/usr/bin/env bash
# Trains a PyTorch MLP on the digits dataset through `mbdata serve`, with two torchrun ranks:
# ingests digits (train/val split) into out/demo-serve, starts the daemon on a free port,
# runs samples/train_digits.py (DDP on CPU), prints the held-out accuracy and the daemon's
# batch counter, and stops the daemon with SIGTERM.
#
#   samples/serve_demo.sh                 # EPOCHS=30 by default
#   MBDATA_BINARY=.build/debug/mbdata EPOCHS=10 samples/serve_demo.sh
#
# Needs the torch virtualenv: python3 -m venv .venv-torch && .venv-torch/bin/pip install torch ./clients/python
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${MBDATA_BINARY:-}
if [ -z "$BIN" ]; then
	if [ -x .build/release/mbdata ]; then BIN=.build/release/mbdata; else BIN=.build/debug/mbdata; fi
fi
VENV_TORCH=${VENV_TORCH:-.venv-torch}
OUT_DIR=${OUT:-out}/demo-serve
EPOCHS=${EPOCHS:-30}
NPROC=${NPROC:-2}

[ -x "$BIN" ] || { echo "no mbdata binary at $BIN: run 'swift build -c release' or set MBDATA_BINARY" >&2; exit 1; }
[ -x "$VENV_TORCH/bin/torchrun" ] || {
	echo "no $VENV_TORCH/bin/torchrun: python3 -m venv $VENV_TORCH && $VENV_TORCH/bin/pip install torch ./clients/python" >&2
	exit 1
}
"$VENV_TORCH/bin/python" -c 'import mbdata_client' 2>/dev/null ||
	"$VENV_TORCH/bin/python" -m pip install --quiet --disable-pip-version-check ./clients/python

rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR"
"$BIN" ingest "$OUT_DIR/digits.mbdb" --schema samples/digits/digits.schema.json --val-fraction 0.2 \
	samples/digits/digits.jsonl

PORT=$("$VENV_TORCH/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
"$BIN" serve "$OUT_DIR/digits.mbdb" --port "$PORT" --state "$OUT_DIR/state.sqlite" >"$OUT_DIR/serve.log" 2>&1 &
SERVER=$!

stop_server() {
	if kill -0 "$SERVER" 2>/dev/null; then
		kill -TERM "$SERVER"
		local status=0
		wait "$SERVER" || status=$?
		echo "mbdata serve stopped (exit $status)"
	fi
}
trap stop_server EXIT

for _ in $(seq 200); do
	curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
	if ! kill -0 "$SERVER" 2>/dev/null; then
		echo "mbdata serve exited while starting:" >&2
		cat "$OUT_DIR/serve.log" >&2
		exit 1
	fi
	sleep 0.1
done
curl -fsS "$URL/healthz" >/dev/null || { echo "mbdata serve did not come up on $URL" >&2; exit 1; }
echo "mbdata serve on $URL (log: $OUT_DIR/serve.log)"

status=0
"$VENV_TORCH/bin/torchrun" --standalone --nproc-per-node "$NPROC" samples/train_digits.py \
	--url "$URL" --dataset digits --epochs "$EPOCHS" 2>&1 | tee "$OUT_DIR/train.log" || status=$?

echo
grep -E '^(held-out accuracy|trained )' "$OUT_DIR/train.log" || true
curl -fsS "$URL/metrics" | grep '^mbdata_batches_served_total' || true
exit "$status"
