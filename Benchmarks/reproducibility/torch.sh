#!/usr/bin/env bash
# The PyTorch half of `make reproducibility`: samples/train_digits.py through `mbdata serve`,
# 2 torchrun ranks (DDP over gloo on CPU, deterministic algorithms), against
#   - the same training SIGKILLed twice (rank 0 kills itself after chosen steps; torchrun
#     stops the other rank) and resumed from its state file: bitwise equal expected;
#   - 1 rank with the whole global batch (the plan makes the global stream independent of
#     the world size): equal to float32 tolerance (the mean of 2 rank means of 32 against one
#     mean of 64, then Adam). Adam divides by the gradient's running RMS, so no useful a-priori
#     bound follows from the summation error; the tolerance, 1e-4, is empirical (measured:
#     about 1e-7 after 5 epochs).
#
#   Benchmarks/reproducibility/torch.sh [OUT_DIR]     (MBDATA_BINARY, VENV_TORCH, EPOCHS)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${1:-out/reproducibility-torch}
BIN=${MBDATA_BINARY:-.build/debug/mbdata}
VENV_TORCH=${VENV_TORCH:-.venv-torch}
EPOCHS=${EPOCHS:-5}
PY="$VENV_TORCH/bin/python"
rm -rf "$OUT_DIR" && mkdir -p "$OUT_DIR"
"$BIN" ingest "$OUT_DIR/digits.mbdb" --schema samples/digits/digits.schema.json --val-fraction 0.2 \
	samples/digits/digits.jsonl >/dev/null 2>&1

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
"$BIN" serve "$OUT_DIR/digits.mbdb" --port "$PORT" --state "$OUT_DIR/state.sqlite" >"$OUT_DIR/serve.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -fsS "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

# train NAME NPROC ARGS…: one torchrun; log in NAME.log; echoes its exit status.
train() {
	local name=$1 nproc=$2 status=0
	shift 2
	"$VENV_TORCH/bin/torchrun" --standalone --nproc-per-node "$nproc" samples/train_digits.py --url "$URL" \
		--dataset digits --epochs "$EPOCHS" --deterministic --min-accuracy 0 "$@" >>"$OUT_DIR/$name.log" 2>&1 || status=$?
	echo "$status"
}
compare() {
	"$PY" - "$OUT_DIR/$1.bin" "$OUT_DIR/$2.bin" <<'PYTHON'
import sys
import numpy as np
a, b = (np.fromfile(path, dtype="<f4") for path in sys.argv[1:3])
print(f"{np.abs(a - b).max():.3e} {'yes' if a.tobytes() == b.tobytes() else 'no'} {np.abs(a).max():.3f}")
PYTHON
}

[ "$(train reference 2 --save-weights "$OUT_DIR/reference.bin")" = 0 ] || { tail "$OUT_DIR/reference.log"; exit 1; }
# 22 steps an epoch (1440 training samples, global batch 64): step 30 is mid-epoch 1, step 66 ends epoch 2.
for kill in 30 66; do
	status=$(train killed 2 --state "$OUT_DIR/killed.pt" --save-every 4 --kill-at-step "$kill")
	[ "$status" != 0 ] || { echo "the run to be killed at step $kill ended normally"; exit 1; }
done
[ "$(train killed 2 --state "$OUT_DIR/killed.pt" --save-every 4 --save-weights "$OUT_DIR/killed.bin")" = 0 ] ||
	{ tail "$OUT_DIR/killed.log"; exit 1; }
[ "$(train single 1 --save-weights "$OUT_DIR/single.bin")" = 0 ] || { tail "$OUT_DIR/single.log"; exit 1; }

echo "| configuration (PyTorch, $EPOCHS epochs, global batch 64) | max \|Δw\| | bitwise equal |"
echo "|---|---|---|"
read -r delta equal _ <<<"$(compare reference killed)"
echo "| 2 ranks, SIGKILL after steps 30 and 66, resumed (saves every 4 steps) | $delta | $equal |"
read -r delta2 equal2 magnitude <<<"$(compare reference single)"
echo "| 1 rank × 64 against 2 ranks × 32 | $delta2 | $equal2 |"
echo "(|w| up to $magnitude; resumes: $(grep -oE 'resuming at epoch [0-9]+ batch [0-9]+ \(step [0-9]+\)' "$OUT_DIR/killed.log" | tr '\n' ';'))"
[ "$equal" = yes ] || { echo "NOT REPRODUCIBLE: the killed and resumed PyTorch run"; exit 1; }
awk -v d="$delta2" 'BEGIN { exit !(d <= 1e-4) }' || { echo "OUT OF TOLERANCE: 1 rank against 2 ranks ($delta2 > 1e-4)"; exit 1; }
echo "the killed PyTorch run matched bit for bit; 1 rank × 64 is within 1e-4 of 2 ranks × 32"
