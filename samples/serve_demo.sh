#!/usr/bin/env bash
# Trains on the digits dataset through `mbdata serve` with two ranks: ingests digits
# (train/val split) into out/demo-serve, starts the daemon on a free port, runs the
# trainers, prints the held-out accuracy and the daemon's batch counter. Then batch
# inference: creates the output table `preds`, runs samples/infer_digits.py (two inference
# processes over the val split, one killed mid-way), queries the accuracy with sqlite3 and
# exports the outputs as NPY. Stops the daemon with SIGTERM.
#
#   samples/serve_demo.sh                 # TRAINER=torch: samples/train_digits.py under torchrun (DDP on CPU), EPOCHS=30
#   TRAINER=swift samples/serve_demo.sh   # two digits-trainer processes (Swift, MultiBatchLoader over ServeSource)
#   MBDATA_BINARY=.build/debug/mbdata EPOCHS=10 samples/serve_demo.sh
#
# TRAINER=torch needs the torch virtualenv: python3 -m venv .venv-torch && .venv-torch/bin/pip install torch ./clients/python
# The inference step runs in $VENV (.venv, `make venv`) with TRAINER=swift, else in the torch virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${MBDATA_BINARY:-}
if [ -z "$BIN" ]; then
	if [ -x .build/release/mbdata ]; then BIN=.build/release/mbdata; else BIN=.build/debug/mbdata; fi
fi
VENV_TORCH=${VENV_TORCH:-.venv-torch}
VENV=${VENV:-.venv}
OUT_DIR=${OUT:-out}/demo-serve
EPOCHS=${EPOCHS:-30}
NPROC=${NPROC:-2}
TRAINER=${TRAINER:-torch}
TRAINER_BIN=${TRAINER_BIN:-$(dirname "$BIN")/digits-trainer}

[ -x "$BIN" ] || { echo "no mbdata binary at $BIN: run 'swift build -c release' or set MBDATA_BINARY" >&2; exit 1; }
if [ "$TRAINER" = swift ]; then
	[ -x "$TRAINER_BIN" ] || { echo "no digits-trainer at $TRAINER_BIN: swift build -c release --product digits-trainer" >&2; exit 1; }
	PYTHON_INFER=$VENV/bin/python
	[ -x "$PYTHON_INFER" ] || { echo "no $PYTHON_INFER: run 'make venv'" >&2; exit 1; }
	"$PYTHON_INFER" -c 'import mbdata_client' 2>/dev/null ||
		"$PYTHON_INFER" -m pip install --quiet --disable-pip-version-check ./clients/python
else
	PYTHON_INFER=$VENV_TORCH/bin/python
	[ -x "$VENV_TORCH/bin/torchrun" ] || {
		echo "no $VENV_TORCH/bin/torchrun: python3 -m venv $VENV_TORCH && $VENV_TORCH/bin/pip install torch ./clients/python" >&2
		exit 1
	}
	"$VENV_TORCH/bin/python" -c 'import mbdata_client' 2>/dev/null ||
		"$VENV_TORCH/bin/python" -m pip install --quiet --disable-pip-version-check ./clients/python
fi

rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR"
"$BIN" ingest "$OUT_DIR/digits.mbdb" --schema samples/digits/digits.schema.json --val-fraction 0.2 \
	samples/digits/digits.jsonl

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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
if [ "$TRAINER" = swift ]; then
	pids=()
	for rank in $(seq 0 $((NPROC - 1))); do
		"$TRAINER_BIN" "$OUT_DIR/digits.mbdb" --url "$URL" --rank "$rank" --world "$NPROC" >"$OUT_DIR/train-$rank.log" 2>&1 &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
	echo
	cat "$OUT_DIR"/train-*.log
else
	"$VENV_TORCH/bin/torchrun" --standalone --nproc-per-node "$NPROC" samples/train_digits.py \
		--url "$URL" --dataset digits --epochs "$EPOCHS" 2>&1 | tee "$OUT_DIR/train.log" || status=$?
	echo
	grep -E '^(held-out accuracy|trained )' "$OUT_DIR/train.log" || true
fi
curl -fsS "$URL/metrics" | grep '^mbdata_batches_served_total' || true

echo
echo "batch inference over the val split, outputs written back into $OUT_DIR/digits.mbdb"
"$BIN" outputs create "$OUT_DIR/digits.mbdb" --name preds --schema samples/digits/preds.schema.json
"$PYTHON_INFER" samples/infer_digits.py --url "$URL" --dataset digits --output preds --db "$OUT_DIR/digits.mbdb" ||
	status=$?
echo "held-out accuracy by sqlite3:"
sqlite3 "$OUT_DIR/digits.mbdb" 'select avg(s.label = o.pred) from samples s join outputs_preds o using (_id)'
"$BIN" outputs export "$OUT_DIR/digits.mbdb" --name preds --format npy --out "$OUT_DIR/preds"
ls -l "$OUT_DIR/preds"
"$BIN" inspect "$OUT_DIR/digits.mbdb"
curl -fsS "$URL/metrics" | grep -E '^mbdata_outputs_(rows|batches)_total' || true
exit "$status"
