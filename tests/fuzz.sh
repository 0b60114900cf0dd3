#!/usr/bin/env bash
# Fuzzes every parser fed by admins, users, tasks or the network (fuzz/, cargo-fuzz targets).
#
#   tests/fuzz.sh [SECONDS_PER_TARGET]     default 30 (CI); a longer run: tests/fuzz.sh 3600
#   FUZZ_TARGETS="ranges records" tests/fuzz.sh 60    only some targets
#
# Builds with cargo fuzz (AddressSanitizer through RUSTC_BOOTSTRAP=1 on stable; without a
# sanitizer if that build fails), runs each target for SECONDS on a fresh temporary corpus plus
# the committed seeds in fuzz/seeds/<target>/ (two targets at a time), and writes
# target/fuzz/report.md and target/fuzz/report.json: per target the seconds, executions
# (libFuzzer's stat::number_of_executed_units), final corpus size and crashes. A crash fails
# the run; its input stays in target/fuzz/artifacts/<target>/ with the command that replays it.
set -uo pipefail

SECS="${1:-30}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$CARGO_TARGET_DIR/fuzz"
JOBS="${FUZZ_JOBS:-2}"
mkdir -p "$OUT"
start_all=$(date +%s)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is missing (cargo install --locked cargo-fuzz)" >&2
    exit 1
fi

# Sanitizer flags are nightly-only; the stable toolchain accepts them with RUSTC_BOOTSTRAP=1.
export RUSTC_BOOTSTRAP=1
SANITIZER=address
if ! cargo fuzz build >"$OUT/build.log" 2>&1; then
    echo "fuzz: AddressSanitizer build failed (see $OUT/build.log); building without a sanitizer" >&2
    SANITIZER=none
    if ! cargo fuzz build --sanitizer none >>"$OUT/build.log" 2>&1; then
        tail -40 "$OUT/build.log" >&2
        echo "fuzz: build failed" >&2
        exit 1
    fi
fi
BIN_DIR="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

TARGETS="${FUZZ_TARGETS:-$(cargo fuzz list)}"
rm -rf "$OUT/runs"
mkdir -p "$OUT/runs"

run_one() { # target
    local t="$1" corpus rc
    corpus="$(mktemp -d "${TMPDIR:-/tmp}/fuzz-corpus-$t.XXXXXX")"
    mkdir -p "$OUT/artifacts/$t" "fuzz/seeds/$t"
    local t0=$(date +%s)
    "$BIN_DIR/$t" -max_total_time="$SECS" -print_final_stats=1 -timeout=20 -rss_limit_mb=2048 \
        -max_len=65536 -artifact_prefix="$OUT/artifacts/$t/" "$corpus" "fuzz/seeds/$t" \
        >"$OUT/runs/$t.log" 2>&1
    rc=$?
    echo "$rc $(( $(date +%s) - t0 )) $(find "$corpus" -type f | wc -l)" >"$OUT/runs/$t.rc"
    rm -rf "$corpus"
}

running=0
for t in $TARGETS; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

failed=0
rows=()
json="["
for t in $TARGETS; do
    read -r rc secs new_units <"$OUT/runs/$t.rc"
    log="$OUT/runs/$t.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    crash_files=$(grep -oE "Test unit written to [^ ]+" "$log" | sed 's/Test unit written to //')
    crashes=$(printf '%s' "$crash_files" | grep -c . || true)
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
    status=ok
    if [ "$crashes" -gt 0 ]; then
        status=CRASH
        failed=1
        echo "fuzz: $t CRASHED (exit $rc); log: $log" >&2
        grep -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer|SUMMARY" "$log" | head -5 >&2
        for f in $crash_files; do
            echo "  reproduce: $BIN_DIR/$t $f    (or: RUSTC_BOOTSTRAP=1 cargo fuzz run $t $f)" >&2
        done
    fi
    printf 'fuzz: %-15s %-5s %4ss %12s execs  corpus %s (new %s)\n' "$t" "$status" "$secs" \
        "${execs:-?}" "${corp:-?}" "$new_units"
    rows+=("| $t | $status | $secs | ${execs:-?} | ${corp:-?} | $new_units | $crashes |")
    [ "$json" = "[" ] || json+=","
    json+=$(printf '{"target":"%s","status":"%s","seconds":%s,"executions":%s,"corpus":%s,"new_units":%s,"crashes":%s}' \
        "$t" "$status" "$secs" "${execs:-null}" "${corp:-null}" "$new_units" "$crashes")
done
json+="]"
wall=$(( $(date +%s) - start_all ))

{
    echo "# Fuzzing report"
    echo
    echo "\`tests/fuzz.sh $SECS\` on $(date -u +'%Y-%m-%d %H:%M UTC'), sanitizer: $SANITIZER," \
        "$JOBS targets at a time, wall time ${wall}s (build included)."
    echo "Each target starts from a fresh corpus plus the committed seeds in \`fuzz/seeds/<target>/\`."
    echo "Executions are libFuzzer's \`stat::number_of_executed_units\`; corpus is the last corpus size libFuzzer"
    echo "printed (seeds included); new units are the inputs it added to the fresh corpus."
    echo
    echo "| target | result | seconds | executions | corpus | new units | crashes |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "A longer run: \`tests/fuzz.sh 3600\` (seconds per target). Replay an input:"
    echo "\`$BIN_DIR/<target> <file>\` or \`RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>\`."
} >"$OUT/report.md"
printf '{"seconds_per_target":%s,"sanitizer":"%s","wall_seconds":%s,"targets":%s}\n' \
    "$SECS" "$SANITIZER" "$wall" "$json" >"$OUT/report.json"

echo "fuzz: report in $OUT/report.md; wall time ${wall}s"
if [ "$failed" -ne 0 ]; then
    echo "fuzz: FAILED (crashes above)" >&2
    exit 1
fi
echo "fuzz: PASS"
