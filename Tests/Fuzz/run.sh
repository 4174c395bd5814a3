#!/usr/bin/env bash
# Runs each fuzz target for FUZZ_SECONDS (default 60), FUZZ_JOBS targets at a time (default 2),
# starting from the committed corpus. New interesting inputs go to Benchmarks/work/fuzz/<target>/;
# a crash, leak, timeout or out-of-memory input is written into Tests/Fuzz/corpus/<target>/
# under libFuzzer's name, to be fixed and committed (make test replays it from then on).
# Prints one line per target: executions, seconds, corpus size, findings.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${FUZZ_BINARY:-.build-fuzz/release/mbdata-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
WORK=Benchmarks/work/fuzz
TARGETS=${FUZZ_TARGETS:-$("$BIN" --list | sed -n 's/^  \([a-z0-9-]*\):.*/\1/p')}
mkdir -p "$WORK"

run_one() {
    local target=$1 work=$WORK/$1
    mkdir -p "$work/corpus"
    local before
    before=$(ls "Tests/Fuzz/corpus/$target" | wc -l)
    # -malloc_limit_mb: one input may not make a parser allocate past 1 GiB at once.
    "$BIN" "$target" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="Tests/Fuzz/corpus/$target/" \
        "$work/corpus" "Tests/Fuzz/corpus/$target" >"$work/log.txt" 2>&1 || true
    local runs findings
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log.txt" | tail -1)
    findings=$(( $(ls "Tests/Fuzz/corpus/$target" | wc -l) - before ))
    printf '%-16s %12s executions in %ss, corpus %s inputs, findings %s\n' \
        "$target" "${runs:-?}" "$SECONDS_EACH" "$(ls "$work/corpus" | wc -l)" "$findings"
}
export -f run_one
# Swift's own backtracer would catch the trap first and trip AddressSanitizer reading memory.
export BIN SECONDS_EACH WORK SWIFT_BACKTRACE=enable=no
echo "fuzzing $(echo $TARGETS | wc -w) targets for ${SECONDS_EACH}s each, $JOBS at a time ($(date -u +%FT%TZ), $(git rev-parse --short HEAD))"
printf '%s\n' $TARGETS | xargs -P "$JOBS" -I{} bash -c 'run_one {}' | tee "$WORK/summary.txt"
