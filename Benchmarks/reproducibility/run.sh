#!/usr/bin/env bash
# `make reproducibility`: does multi-batch synchronisation change what is learned?
#
# Trains the Swift digits sample (softmax regression, synchronous k = 4, 15 epochs) under
# different timings and interruptions and compares the final weights with an undisturbed
# reference run, bit for bit. Then measures what asynchronous mode changes. Prints a table:
# configuration, updates, max |Δw| against the reference, bitwise equal.
#
#   Benchmarks/reproducibility/run.sh [OUT_DIR]      (BIN_DIR: where mbdata and digits-trainer are)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT_DIR=${1:-out/reproducibility}
BIN_DIR=${BIN_DIR:-.build/debug}
TRAINER="$BIN_DIR/digits-trainer"
JITTER_MS=${JITTER_MS:-15}
rm -rf "$OUT_DIR" && mkdir -p "$OUT_DIR"
DB="$OUT_DIR/digits.mbdb"
"$BIN_DIR/mbdata" ingest "$DB" --schema samples/digits/digits.schema.json --val-fraction 0.2 samples/digits/digits.jsonl >/dev/null

ROWS=()
# train NAME ARGS…: one run to the end; its log and weights go to $OUT_DIR/NAME.{log,bin}.
train() {
	local name=$1
	shift
	"$TRAINER" "$DB" "$OUT_DIR/$name.state" --save-weights "$OUT_DIR/$name.bin" "$@" >"$OUT_DIR/$name.log" 2>&1 ||
		{ echo "run $name failed:"; tail -5 "$OUT_DIR/$name.log"; exit 1; }
}
# updates NAME: the number of weight updates the run made.
updates() {
	local log="$OUT_DIR/$1.log"
	grep -oE '^updates: [0-9]+' "$log" | grep -oE '[0-9]+' ||
		grep -oE 'over [0-9]+ updates' "$log" | grep -oE '[0-9]+'
}
# row LABEL NAME [REFERENCE] [EXPECTED]: a table row comparing NAME's weights with REFERENCE's.
row() {
	local label=$1 name=$2 reference=${3:-reference} expected=${4:-yes}
	local compared delta equal
	compared=$("$TRAINER" --compare "$OUT_DIR/$reference.bin" "$OUT_DIR/$name.bin")
	delta=$(sed -E 's/^max\|Δw\| ([^ ]+).*/\1/' <<<"$compared")
	equal=$(sed -E 's/.*bitwise-equal //' <<<"$compared")
	ROWS+=("$(printf '| %-62s | %7s | %9s | %-3s | %-8s |' "$label" "$(updates "$name")" "$delta" "$equal" "$expected")")
	if [ "$expected" != "any" ] && [ "$equal" != "$expected" ]; then FAILED+=("$label"); fi
}
FAILED=()

echo "reference: synchronous k=4, no delays"
train reference
echo "timing: seeded random delays of 0..<${JITTER_MS} ms per call"
for seed in 1 2 3; do train "jitter$seed" --jitter-ms "$JITTER_MS" --jitter-seed "$seed"; done
train arrival1 --reduction arrival --jitter-ms "$JITTER_MS" --jitter-seed 1
train arrival2 --reduction arrival --jitter-ms "$JITTER_MS" --jitter-seed 2
train single --consumers 1 --batches-per-update 4

echo "interruptions: SIGKILL at chosen points and at a random moment, resumed from the state file"
KILLED="$OUT_DIR/killed"
segment=0
# resume ARGS…: one more run of the interrupted training; echoes its exit status.
resume() {
	segment=$((segment + 1))
	local status=0
	"$TRAINER" "$DB" "$KILLED.state" --save-weights "$KILLED.bin" --save-every 5 \
		--jitter-ms "$JITTER_MS" --jitter-seed $((100 + segment)) "$@" >"$KILLED.$segment.log" 2>&1 || status=$?
	echo "$status"
}
# Step 11 holds the last batch of epoch 0 (slot 0) and the first three of epoch 1: killed mid-step at the epoch boundary.
[ "$(resume --kill-at 11:0)" = 137 ] || { echo "expected a SIGKILL at 11:0"; exit 1; }
# Step 37: mid-epoch (epoch 3), mid-step after slot 2; the last save was after step 34.
[ "$(resume --kill-at 37:2)" = 137 ] || { echo "expected a SIGKILL at 37:2"; exit 1; }
# Step 44 ends epoch 3 exactly (180 batches); killed right after its state was saved.
[ "$(resume --kill-at 44:end)" = 137 ] || { echo "expected a SIGKILL at 44:end"; exit 1; }
# A SIGKILL from outside at a random moment (a state write included), then resume to the end.
"$TRAINER" "$DB" "$KILLED.state" --save-weights "$KILLED.bin" --save-every 5 --jitter-ms "$JITTER_MS" --jitter-seed 99 \
	>"$KILLED.random.log" 2>&1 &
victim=$!
sleep "0.$((RANDOM % 9 + 1))"
kill -KILL "$victim" 2>/dev/null || true
wait "$victim" || true
status=$(resume)
[ "$status" = 0 ] || { echo "the last resume failed ($status)"; tail -5 "$KILLED.$segment.log"; exit 1; }
cp "$KILLED.$segment.log" "$OUT_DIR/killed.log"

row "sync k=4, delays seed 1 (fixed-order reduction)" jitter1
row "sync k=4, delays seed 2" jitter2
row "sync k=4, delays seed 3" jitter3
row "sync k=4, 3 SIGKILLs (11:0, 37:2, 44:end) + 1 random, resumed" killed
row "sync k=4, arrival-order reduction, delays seed 1 (old code)" arrival1 reference any
row "  same, delays seed 2, against seed 1" arrival2 arrival1 any
row "1 consumer, one gradient sum over each 4×32 global batch" single reference any

echo "asynchronous mode: k calls in flight, each update applied as its call returns"
for k in 1 2 4; do
	train "async$k" --mode async --consumers "$k" --jitter-ms "$JITTER_MS" --jitter-seed 1
	train "async${k}b" --mode async --consumers "$k" --jitter-ms "$JITTER_MS" --jitter-seed 2
	row "async k=$k, delays seed 2 against seed 1" "async${k}b" "async$k" any
done

echo
echo "| configuration                                                  | updates | max \|Δw\|  | bitwise equal | expected |"
echo "|----------------------------------------------------------------|---------|-----------|---------------|----------|"
printf '%s\n' "${ROWS[@]}"
echo
echo "reference weights: $(grep -oE 'fnv1a64:[0-9a-f]+' "$OUT_DIR/reference.log"); |w| up to $("$TRAINER" --compare "$OUT_DIR/reference.bin" "$OUT_DIR/reference.bin" | sed -E 's/.*max\|w\| ([^)]+).*/\1/')"
echo
echo "| run | held-out accuracy | held-out loss | training loss, epochs 1 / 5 / 15 | staleness max / mean |"
echo "|---|---|---|---|---|"
for name in reference single async1 async2 async4; do
	log="$OUT_DIR/$name.log"
	accuracy=$(grep -oE 'held-out accuracy [0-9.]+%' "$log" | grep -oE '[0-9.]+%')
	loss=$(grep -oE 'held-out loss [0-9.]+' "$log" | grep -oE '[0-9.]+$')
	curve=$(grep -E '^training loss by epoch' "$log" | awk '{print $5 " / " $9 " / " $NF}')
	stale=$(grep -oE 'max [0-9]+, mean [0-9.]+' "$log" | sed -E 's/max ([0-9]+), mean ([0-9.]+)/\1 \/ \2/' || true)
	echo "| $name | $accuracy | $loss | $curve | ${stale:-0 / 0 (synchronous)} |"
done
if [ ${#FAILED[@]} -gt 0 ]; then
	printf 'NOT REPRODUCIBLE: %s\n' "${FAILED[@]}"
	exit 1
fi
echo "every synchronous run expected to match matched the reference bit for bit"
