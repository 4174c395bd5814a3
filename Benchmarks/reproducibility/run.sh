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
"$BIN_DIR/mbdata" ingest "$DB" --schema samples/digits/digits.schema.json --val-fraction 0.2 samples/digits/digits.jsonl >/dev/null 2>&1

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
# row LABEL NAME [REFERENCE] [EXPECTED] [UPDATES]: a table row comparing NAME's weights with REFERENCE's.
row() {
	local label=$1 name=$2 reference=${3:-reference} expected=${4:-yes} count=${5:-}
	local compared delta equal
	compared=$("$TRAINER" --compare "$OUT_DIR/$reference.bin" "$OUT_DIR/$name.bin")
	delta=$(sed -E 's/^max\|Δw\| ([^ ]+).*/\1/' <<<"$compared")
	equal=$(sed -E 's/.*bitwise-equal //' <<<"$compared")
	ROWS+=("$(printf '| %-62s | %7s | %9s | %-3s | %-8s |' "$label" "${count:-$(updates "$name")}" "$delta" "$equal" "$expected")")
	case $expected in
	any) ;;
	"<="*) awk -v d="$delta" -v t="${expected#<=}" 'BEGIN { exit !(d <= t) }' || FAILED+=("$label") ;;
	*) [ "$equal" = "$expected" ] || FAILED+=("$label") ;;
	esac
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
SEGMENT=0
# resume EXPECTED ARGS…: one more run of the interrupted training (each with its own delay
# seed), which must end with exit status EXPECTED (137: SIGKILL).
resume() {
	local expected=$1 status=0
	shift
	SEGMENT=$((SEGMENT + 1))
	"$TRAINER" "$DB" "$KILLED.state" --save-weights "$KILLED.bin" --save-every 5 \
		--jitter-ms "$JITTER_MS" --jitter-seed $((100 + SEGMENT)) "$@" >"$KILLED.$SEGMENT.log" 2>&1 || status=$?
	[ "$status" = "$expected" ] || { echo "run $SEGMENT of the killed training ($*) ended with $status, not $expected"; exit 1; }
	echo "  run $SEGMENT ${*:-to the end}: $(grep -oE '^resuming: [0-9]+ batches' "$KILLED.$SEGMENT.log" || echo 'from the start'), exit $status"
}
# Step 11 holds the last batch of epoch 0 (slot 0) and the first three of epoch 1: killed mid-step at the epoch boundary.
resume 137 --kill-at 11:0
# Step 37: mid-epoch (epoch 3), mid-step after slot 2; the last save was after step 34.
resume 137 --kill-at 37:2
# Step 44 ends epoch 3 exactly (180 batches); killed right after its state was saved.
resume 137 --kill-at 44:end
# A SIGKILL from outside at a random moment (a state write included), then resume to the end.
"$TRAINER" "$DB" "$KILLED.state" --save-weights "$KILLED.bin" --save-every 5 --jitter-ms "$JITTER_MS" --jitter-seed 99 \
	>"$KILLED.random.log" 2>&1 &
victim=$!
sleep "$((RANDOM % 3 + 1)).$((RANDOM % 10))"
kill -KILL "$victim" 2>/dev/null || true
wait "$victim" 2>/dev/null || true
echo "  run with a SIGKILL from outside: $(grep -oE '^resuming: [0-9]+ batches' "$KILLED.random.log" || echo 'killed before its first line'), killed"
resume 0
cp "$KILLED.$SEGMENT.log" "$OUT_DIR/killed.log"

row "sync k=4, delays seed 1 (fixed-order reduction)" jitter1
row "sync k=4, delays seed 2" jitter2
row "sync k=4, delays seed 3" jitter3
row "sync k=4, 3 SIGKILLs (11:0, 37:2, 44:end) + 1 random, resumed" killed reference yes "$(updates reference) ($((SEGMENT + 1)) runs)"
row "sync k=4, arrival-order reduction, delays seed 1 (old code)" arrival1 reference any
row "  same, delays seed 2, against seed 1" arrival2 arrival1 any
# Float32 summation order only: one running sum of 128 rows against 4 sums of 32 then 3 additions.
# Per update the gradient sums differ by at most (γ127 + γ34)·Σ|row terms| (γn = n·2⁻²⁴/(1 − n·2⁻²⁴)),
# i.e. a weight change of at most 0.5 · 9.6e-6 per update as every row term is in [-1, 1];
# 169 updates give 8e-4 if training does not amplify the difference: the tolerance is 1e-3.
row "1 consumer, one gradient sum over each 4×32 global batch" single reference "<=1e-3"

echo "asynchronous mode: k calls in flight, each update applied as its call returns"
for k in 1 2 4; do
	train "async$k" --mode async --consumers "$k" --jitter-ms "$JITTER_MS" --jitter-seed 1
	train "async${k}b" --mode async --consumers "$k" --jitter-ms "$JITTER_MS" --jitter-seed 2
	row "async k=$k, delays seed 2 against seed 1" "async${k}b" "async$k" any
done
train sync1 --consumers 1
row "sync k=1 (one update per batch) against async k=1" sync1 async1 yes

echo
echo "| configuration                                                  | updates | max \|Δw\| | bitwise equal | expected |"
echo "|----------------------------------------------------------------|---------|-----------|-----|----------|"
printf '%s\n' "${ROWS[@]}"
echo
echo "reference weights: $(grep -oE 'fnv1a64:[0-9a-f]+' "$OUT_DIR/reference.log"); |w| up to $("$TRAINER" --compare "$OUT_DIR/reference.bin" "$OUT_DIR/reference.bin" | sed -E 's/.*max\|w\| ([^)]+).*/\1/')"
echo
echo "| run | updates | held-out accuracy | held-out loss | training loss, epochs 1 / 5 / 15 | staleness max / mean | calls in flight at start max / mean |"
echo "|---|---|---|---|---|---|---|"
for name in reference single async1 async2 async4; do
	log="$OUT_DIR/$name.log"
	accuracy=$(grep -oE 'held-out accuracy [0-9.]+%' "$log" | grep -oE '[0-9.]+%')
	loss=$(grep -oE 'held-out loss [0-9.]+' "$log" | grep -oE '[0-9.]+$')
	curve=$(grep -E '^training loss by epoch' "$log" | awk '{print $5 " / " $9 " / " $NF}')
	stale=$(grep -oE 'k=[0-9]+\): max [0-9]+, mean [0-9.]+' "$log" | sed -E 's/.*max ([0-9]+), mean ([0-9.]+)/\1 \/ \2/' || true)
	flight=$(grep -oE 'in flight at start: max [0-9]+, mean [0-9.]+' "$log" | sed -E 's/.*max ([0-9]+), mean ([0-9.]+)/\1 \/ \2/' || true)
	echo "| $name | $(updates "$name") | $accuracy | $loss | $curve | ${stale:-0 (synchronous)} | ${flight:-all k of a step (synchronous)} |"
done
if [ ${#FAILED[@]} -gt 0 ]; then
	printf 'NOT REPRODUCIBLE: %s\n' "${FAILED[@]}"
	exit 1
fi
echo "every synchronous run expected to match matched the reference bit for bit"
