#!/usr/bin/env bash
# Runs the C-host tests (spank-qrmi/tests/host.rs, spank-frames/tests/host.rs,
# tests/testplugin/tests/layer.rs) with every spank_host process, and the plugin it loads,
# under valgrind memcheck; passes only with zero errors and zero leaks (definite or possible)
# in every host process.
#
#   tests/valgrind-host.sh        logs in target/valgrind/vg.<pid>.log
#
# tests/valgrind.supp suppresses only glibc/Rust-runtime noise, each entry with its reason.
# Test result lines are indented so tests/run-all.sh's tally does not count these reruns.
# The test harness sets SPANK_HOST_WRAPPER, which tests/host/src/lib.rs puts before the host.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LOGS="$CARGO_TARGET_DIR/valgrind"
rm -rf "$LOGS"
mkdir -p "$LOGS"
start=$(date +%s)

command -v valgrind >/dev/null || { echo "valgrind: not installed" >&2; exit 1; }

# Build first so compile time is not spent under the wrapper.
cargo test --no-run -p spank-qrmi -p spank-frames -p spank-testplugin >"$LOGS/build.log" 2>&1 || {
    tail -30 "$LOGS/build.log" >&2
    exit 1
}

export SPANK_HOST_WRAPPER="valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
--show-leak-kinds=definite,possible --errors-for-leak-kinds=definite,possible \
--track-origins=yes --num-callers=30 --suppressions=$ROOT/tests/valgrind.supp \
--log-file=$LOGS/vg.%p.log"

tests_rc=0
for spec in "spank-qrmi host" "spank-frames host" "spank-testplugin layer"; do
    set -- $spec
    echo "valgrind: cargo test -p $1 --test $2"
    cargo test -p "$1" --test "$2" -- --test-threads=2 2>&1 | tee "$LOGS/test-$1.log" |
        grep -E "^test result|FAILED|panicked" | sed 's/^/  (valgrind) /' || true
    grep -q "^test result: ok" "$LOGS/test-$1.log" || tests_rc=1
done

runs=0
errors=0
bad=()
for f in "$LOGS"/vg.*.log; do
    [ -e "$f" ] || continue
    runs=$((runs + 1))
    n=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$f" | tail -1 | tr -d ,)
    if [ -z "$n" ]; then
        # A process that exec'd (a task's /bin/sh) or was killed leaves no summary of its own.
        continue
    fi
    if [ "$n" -ne 0 ]; then
        errors=$((errors + n))
        bad+=("$f")
    fi
done
lost=$(grep -h "definitely lost:" "$LOGS"/vg.*.log 2>/dev/null |
    sed 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/' | tr -d , | awk '{s += $1} END {print s + 0}')

wall=$(( $(date +%s) - start ))
echo "valgrind: $runs host processes, $errors errors, $lost bytes definitely lost, tests $([ $tests_rc -eq 0 ] && echo passed || echo FAILED), ${wall}s"
for f in "${bad[@]}"; do
    echo "---- $f" >&2
    grep -E "^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|[0-9,]+ bytes in)|^==[0-9]+==    (at|by) " "$f" | head -30 >&2
done
if [ "$errors" -ne 0 ] || [ "$tests_rc" -ne 0 ] || [ "$runs" -eq 0 ]; then
    echo "valgrind: FAILED" >&2
    exit 1
fi
echo "valgrind: PASS"
