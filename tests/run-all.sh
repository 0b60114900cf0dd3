#!/usr/bin/env bash
# Runs every test of the project, in order of cost: format and lint, unit and C-host tests,
# the C-host tests under valgrind, the plugins' link order (tests/hot-symbols.sh --check),
# fuzzing, builds against the Slurm 22.05 / 24.11 / 26.05 headers, the packages
# (tests/package-test.sh, packaging/rpm/build.sh), then the integration tests on real
# namespaced Slurm clusters (brought up here and always torn down), running the plugins from
# those packages: 22.05 with the heavy hardening tests, 24.11 and 26.05 from debootstrapped
# root filesystems, and controller failover. Run as root on Debian 12; .ci/run calls this
# after installing what it needs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# Everything is also kept in a log, from which the closing tally is counted.
mkdir -p target
log=target/run-all.log
exec > >(tee "$log") 2>&1

section() { printf '\n==== %s (%s)\n' "$1" "$(date +%T)"; }
started=$(date +%s)
rm -f target/suite-24.11.log target/suite-26.05.log

# On failure, the run's output ends with what failed (test names and their panic messages), not
# with the daemon logs dumped after it: CI shows the end of the output.
failure_digest() {
    local files=("$log") f
    for f in target/suite-24.11.log target/suite-26.05.log; do
        [ -f "$f" ] && files+=("$f")
    done
    printf '\n---- what failed (from %s)\n' "${files[*]}"
    grep -h -E -A12 '^---- .* stdout ----$' "${files[@]}" | tail -n 120 || true
    grep -h -E '^test .* \.\.\. FAILED$|^error(\[E[0-9]+\])?:|^(cluster|selftest)[.a-z]*: .*(fail|error|die)' "${files[@]}" | tail -n 40 || true
}
on_exit() {
    local rc=$?
    ((rc == 0)) || failure_digest
    exit "$rc"
}
trap on_exit EXIT

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run-all.sh must run as root (it starts a Slurm cluster in network namespaces)" >&2
    exit 1
fi

bash tests/install-deps.sh

section "format and lint"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

section "unit and C-host tests"
cargo test --workspace

section "C-host tests under valgrind memcheck"
tests/valgrind-host.sh

section "the plugins' unused-path functions are placed together (hot-symbols.txt up to date)"
tests/hot-symbols.sh --check

section "fuzzing every parser (60 s per target; a longer run: tests/fuzz.sh 3600)"
tests/fuzz.sh 60

section "builds against three Slurm releases' headers"
tests/versions/build-all.sh

section "packages: .deb installed on this host and purged again, RPM spec built (rpmbuild)"
# The clusters below run the plugins from these packages too (tests/stage-plugins.sh).
tests/package-test.sh
packaging/rpm/build.sh >/dev/null

section "the test cluster's self-test (22.05: jobs, GlusterFS clients per node, per-node munged, accounting, private dirs, leak checks)"
tests/cluster/selftest.sh --private-dir /tmp/spank-selftest-private

section "integration tests on the namespaced test cluster (Slurm 22.05, the host's)"
t22=$(date +%s)
stage=$(tests/stage-plugins.sh)
cluster=tests/cluster/cluster.sh
cleanup() {
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "---- integration tests failed (rc=$rc): daemon logs follow" >&2
        "$cluster" logs >&2 || true
    fi
    "$cluster" down || true
    ((rc == 0)) || failure_digest
    exit "$rc"
}
trap cleanup EXIT
# debug: the plugins log "loaded in remote context" at debug level, the evidence tests look for.
SPANK_SLURM_DEBUG=debug "$cluster" up --plugins "$stage"
# The user tools, in the (root-owned) scratch dir where every node and the test user find them.
tools="${SPANK_CLUSTER_DIR:-$(bash "$repo/tests/cluster/cluster.sh" dir)}/bin"
install -d -m 0755 "$tools"
install -m 0755 "$stage"/bin/* "$tools/"
export SPANK_CLUSTER_ENV="${SPANK_CLUSTER_DIR:-$(bash "$repo/tests/cluster/cluster.sh" dir)}/cluster.env"
# One at a time: some tests swap plugstack.conf, which every job reads. A 24.11 build of
# spank_frames is the "other release" plugin Slurm must refuse (tests/releases.rs). The heavy
# tests and failover (which needs a backup controller) run below, each once, for real.
SPANK_OTHER_RELEASE_PLUGIN=$repo/target/slurm-trixie/release/libspank_frames.so \
    cargo test -p integration-tests -- --ignored --test-threads=1 \
    --skip storm_of_500_simultaneous_endings_three_times \
    --skip slurmstepd_memory_flat_across_1000_steps_with_both_plugins \
    --skip primary_stopped_mid_array_and_qpu_job_then_back_loses_and_repeats_nothing
# The heavy hardening tests, skipped above: 3 x 500 array tasks ending at one instant (one
# merge, nothing torn) and slurmstepd memory across 1,000 steps (a few minutes).
SPANK_HEAVY_TESTS=1 cargo test -p integration-tests --test storm --test memory -- --ignored --test-threads=1

section "no node drained"
# shellcheck disable=SC1090
. "$SPANK_CLUSTER_ENV"
bad=$(sinfo -h -N -o '%N %T' | grep -Ei 'drain|down|fail' || true)
if [ -n "$bad" ]; then
    echo "unhealthy nodes after the tests:" >&2
    echo "$bad" >&2
    exit 1
fi
echo "all nodes healthy"
trap on_exit EXIT
"$cluster" down
echo "Slurm 22.05: $(( $(date +%s) - t22 )) s"

section "integration tests on Slurm 24.11 and 26.05, side by side (debootstrapped root filesystems)"
# The plugins build-all built against each release's own headers; the user tools are the
# host's build. The 22.05 build of spank_frames is the "other release" plugin Slurm must refuse.
# Each release runs on a cluster instance of its own (SPANK_CLUSTER_ID 1 and 2: own scratch dir,
# bridge, namespaces, rootfs overlay and munged), both at once: their tests mostly wait on
# Slurm, so the two suites share the two cores at little cost. Each suite writes its own log,
# printed whole (and counted) once both are done.
other_release_plugin=$repo/target/slurm-bookworm/release/libspank_frames.so
release_suite() { # RELEASE SUITE INSTANCE
    local rel=$1 suite=$2 rel_started rstage dir sdk_root sdk_started rc=0 bad
    rel_started=$(date +%s)
    export SPANK_CLUSTER_ID=$3
    unset SPANK_CLUSTER_DIR SPANK_CLUSTER_ENV
    trap '"$cluster" logs >&2 || true; "$cluster" down || true' EXIT
    rstage=$(PLUGINS_FROM="target/slurm-$suite/release" tests/stage-plugins.sh "target/stage-$suite")
    SPANK_SLURM_DEBUG=debug "$cluster" up --release "$rel" --plugins "$rstage"
    dir=$(bash "$cluster" dir)
    install -d -m 0755 "$dir/bin"
    install -m 0755 "$rstage"/bin/* "$dir/bin/"
    export SPANK_CLUSTER_ENV=$dir/cluster.env
    # The real QRMI SDK inside the rootfs the jobs run in (the host's venv is not visible there).
    # shellcheck disable=SC1090
    sdk_root=$(. "$SPANK_CLUSTER_ENV" && echo "$SPANK_ROOT")
    sdk_started=$(date +%s)
    QRMI_SDK_PYTHON=$(bash "$repo/tests/install-qrmi-sdk.sh" --root "$sdk_root")
    export QRMI_SDK_PYTHON
    echo "QRMI SDK in the $rel rootfs: $(( $(date +%s) - sdk_started )) s"
    SPANK_OTHER_RELEASE_PLUGIN=$other_release_plugin \
        cargo test -p integration-tests --test foundation --test frames --test frames_model \
        --test frames_queue --test qrmi --test qrmi_compat --test qrmi_sdk --test backend_faults \
        --test releases --test accounting -- --ignored --test-threads=1 || rc=1
    # shellcheck disable=SC1090
    . "$SPANK_CLUSTER_ENV"
    # The release's own sinfo (a 22.05 client cannot talk to a newer controller).
    bad=$(chroot "$SPANK_ROOT" env SLURM_CONF="$SLURM_CONF" sinfo -h -N -o '%N %T' |
        grep -Ei 'drain|down|fail' || true)
    if [ -n "$bad" ]; then
        echo "unhealthy nodes on Slurm $rel after the tests:" >&2
        echo "$bad" >&2
        rc=1
    else
        echo "Slurm $rel: all nodes healthy"
    fi
    ((rc == 0)) && trap - EXIT
    "$cluster" down
    echo "Slurm $rel: $(( $(date +%s) - rel_started )) s (stage + up + tests + down)"
    return "$rc"
}
releases_started=$(date +%s)
(release_suite 24.11 trixie 1) >target/suite-24.11.log 2>&1 &
pid_2411=$!
(release_suite 26.05 sid 2) >target/suite-26.05.log 2>&1 &
pid_2605=$!
releases_rc=0
wait "$pid_2411" || releases_rc=1
wait "$pid_2605" || releases_rc=1
for rel in 24.11 26.05; do
    printf '\n---- Slurm %s (target/suite-%s.log)\n' "$rel" "$rel"
    cat "target/suite-$rel.log"
done
echo "Slurm 24.11 and 26.05 side by side: $(( $(date +%s) - releases_started )) s"
((releases_rc == 0)) || { echo "integration tests on Slurm 24.11 or 26.05 failed (above)" >&2; exit 1; }

section "controller failover (primary + backup slurmctld sharing StateSaveLocation), and no accounting"
# Every other cluster keeps accounting (slurmdbd over MariaDB); this one has none, so frames'
# answers without sacct are tested too (tests/accounting.rs checks both ways).
trap cleanup EXIT
SPANK_SLURM_DEBUG=debug "$cluster" up --backup-ctl --no-accounting --plugins "$stage"
install -d -m 0755 "$tools"
install -m 0755 "$stage"/bin/* "$tools/"
SPANK_FAILOVER_REQUIRED=1 cargo test -p integration-tests --test failover -- --ignored --test-threads=1
cargo test -p integration-tests --test accounting -- --ignored --test-threads=1
trap on_exit EXIT
"$cluster" down

section "node-local frame dirs: each node its own --private-dir, frames gather through Slurm"
trap cleanup EXIT
"$cluster" up --private-dir "/tmp/spank-private-${SPANK_CLUSTER_ID:-0}" --plugins "$stage"
install -d -m 0755 "$tools"
install -m 0755 "$stage"/bin/* "$tools/"
SPANK_PRIVATE_REQUIRED=1 cargo test -p integration-tests --test frames_local -- --ignored --test-threads=1
trap on_exit EXIT
"$cluster" down

section "outcome table of the hardening tests (docs/RELIABILITY.md)"
tests/reliability-report.sh

section "done in $(( $(date +%s) - started )) s"
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '; [0-9]+ failed' "$log" | awk '{s += $2} END {print s + 0}')
echo "tests: $passed passed, $failed failed"
