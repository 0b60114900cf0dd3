#!/usr/bin/env bash
# Benchmarks of issue #5: measures what the plugins cost and how fast collection is, and
# regenerates BENCHMARKS.md (machine, method, every number: median, min and max over repeated
# runs, ratios taken in the same run, each target met or missed). Prints numbers; asserts no
# time. Not part of tests/run-all.sh or CI (it takes minutes and its numbers need a quiet box).
#
#   tests/bench/run.sh [--quick | --smoke] [--no-cluster | --cluster-only] [--out FILE] [--render]
#
# --quick: fewer repeats (3 instead of 5 locally, 1 instead of 3 on the cluster and for the
# frames report, of 2,000 frames instead of 10,000).
# --smoke: tiny workloads and no lock, to check the script itself (numbers meaningless; use
#   with --out elsewhere and --cluster-only, the local items keep their full data sizes).
# --no-cluster: only the items that need no Slurm (4 through the C host, 6, 7, 8, 9); the cluster
#   items are reported as not measured. --cluster-only: the reverse.
# Otherwise the script brings up its own test cluster with SPANK_CLUSTER_ID (default 5; a
# cluster of that id that is up gets replaced) three times: an empty plugstack, both plugins
# as shipped (sections 1, 2, 5), both plugins at log_level=debug with slurmd at debug (the
# plugins' own callback times, section 3, and the epilog run in a live slurmd, 4b); it always
# tears it down.
# --render: measure nothing; rewrite the report from the raw results of the last run (in
#   BENCH_DIR/results, which also keeps that run's parameters), e.g. after changing the text.
# This script only runs the workloads and writes their raw results (plain text, one file per
# measurement, see tests/bench/src/results.rs); the statistics and the report are computed by
# the bench-report binary of this directory's crate, called after each part so that a partial
# run leaves a readable file.
# Run as root (the cluster needs it). Everything timed runs holding `flock /work/heavy.lock`
# when /work exists (a machine shared by several agents), else unlocked; do not wrap the
# script in flock on that file yourself (it would wait for itself). BENCH_DIR (default
# /tmp/spank-bench) holds the generated data (up to ~1.1 GiB, removed at the end) and the raw
# results (kept). Takes ~9 minutes with --quick, ~18 without, on 2 CPUs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

quick=0 smoke=0 cluster=1 local_items=1 render=0 out=$repo/BENCHMARKS.md
while (($#)); do
    case $1 in
        --quick) quick=1 ;;
        --smoke) smoke=1 quick=1 ;;
        --no-cluster) cluster=0 ;;
        --cluster-only) local_items=0 ;;
        --render) render=1 ;;
        --out) out=$2; shift ;;
        *) echo "usage: tests/bench/run.sh [--quick | --smoke] [--no-cluster | --cluster-only] [--out FILE] [--render]" >&2; exit 2 ;;
    esac
    shift
done
reps=$((quick ? 3 : 5))
creps=$((quick ? 1 : 3))
# Cluster workload sizes: section 1 (steps, array tasks) and section 3 (hook pass).
steps=200 tasks=500 hsteps=100 htasks=100 hsubmits=20
((smoke)) && reps=1 steps=10 tasks=20 hsteps=5 htasks=5 hsubmits=2
export SPANK_CLUSTER_ID=${SPANK_CLUSTER_ID:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
work=${BENCH_DIR:-/tmp/spank-bench}
res=$work/results
rel=$CARGO_TARGET_DIR/release
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

cargo build --release --quiet -p bench-report
# report: BENCHMARKS.md (or --out) from the raw results so far.
report() { "$rel/bench-report" "$res" "$out" "$@"; }
if ((render)); then
    [ -d "$res" ] || { echo "run.sh --render: no results in $res" >&2; exit 1; }
    report --rerendered-at "$(date -u '+%Y-%m-%d %H:%M UTC')"
    log "wrote $out"
    exit 0
fi

rm -rf "$work"
mkdir -p "$res"
# The run's parameters stay with its results, so the report describes what was measured.
printf 'quick=%s smoke=%s reps=%s creps=%s steps=%s tasks=%s hsteps=%s htasks=%s hsubmits=%s\n' \
    "$quick" "$smoke" "$reps" "$creps" "$steps" "$tasks" "$hsteps" "$htasks" "$hsubmits" >"$res/params"
# Heavy parts hold the shared lock (fd 9) for their whole duration; waiting for it is never timed.
# A smoke run is small (a few dozen jobs) and takes no lock.
heavy_begin() { if ((!smoke)) && [ -d /work ]; then exec 9>>/work/heavy.lock; flock 9; fi; }
heavy_end() { if ((!smoke)) && [ -d /work ]; then flock -u 9; exec 9>&-; fi; }

# The QPU acquire/release example of item 8: its crate and binary, named here only.
# It runs the backends through the spank-qrmi-backend helper next to it (target/release), as
# the plugin does.
qpu_bench_build() { cargo build --release --quiet -p qrmi-backend --bins --example qpu_bench; }
qpu_bench=$rel/examples/qpu_bench

log "building (release): frames CLI, plugins, bench helpers"
cargo build --release --quiet -p frames -p spank-qrmi -p spank-frames -p blackhole-render
# The C host of item 4 (tests/host's build script compiles it into its OUT_DIR).
cargo build --release --quiet -p spank-test-host
cargo build --release --quiet -p frames-core --example frames_bench
qpu_bench_build
frames=$rel/frames
fb=$rel/examples/frames_bench

# ---- timing: wall clock from bash's EPOCHREALTIME (no fork inside the timed span).
# seconds T0 T1: the span between two "seconds.micros" times (EPOCHREALTIME's form) in seconds,
# 6 decimals (the raw timing format).
seconds() {
    local d=$((${2//[!0-9]/} - ${1//[!0-9]/}))
    printf '%d.%06d\n' $((d / 1000000)) $((d % 1000000))
}
# run_timed NAME CMD...: appends one duration (s) to $res/NAME.
run_timed() {
    local name=$1 t0 t1
    shift
    t0=$EPOCHREALTIME
    if ! "$@" >/dev/null 2>"$res/$name.err"; then
        log "FAILED: $name: $*"; cat "$res/$name.err" >&2; return 1
    fi
    t1=$EPOCHREALTIME
    seconds "$t0" "$t1" >>"$res/$name"
}

# The machine facts of the report's header, taken when measuring and kept with the results.
{
    echo "started=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "cpus=$(nproc)"
    echo "mem_kib=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/meminfo)"
    echo "kernel=$(uname -r)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "slurm=$(dpkg-query -W -f '${Version}' slurm-client 2>/dev/null || echo 'not installed')"
    echo "rustc=$(rustc --version | cut -d' ' -f2)"
    echo "data_fs=$(df --output=fstype "$work" | tail -n 1 | tr -d ' ')"
    echo "data_dir=$work"
    echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$res/machine"
# loadmark LABEL: the load average (1, 5, 15 min) when a part of the run starts.
loadmark() { echo "$1|$(date -u +%H:%M:%S)|$(cut -d' ' -f1-3 /proc/loadavg)" >>"$res/load"; }

# ============ item 6: collection at scale
item6() {
    log "item 6: generating 10,000 and 100,000 records and frames (and 100,000 old record files)"
    local n dir
    for n in 10000 100000; do
        "$fb" gen "$work/frames-$n" "$n"
    done
    # A directory of plugin versions before segments (one record file per task): still read.
    "$fb" gen --files "$work/frames-files-100000" 100000
    sync
    # The shell loop collect scripts use: test each expected frame file. As written in the wild
    # ($(printf) forks a subshell per index) and a fork-free variant (printf -v), the fastest a
    # shell loop gets.
    cat >"$work/loop-fork.sh" <<'EOF'
d=$1; n=$2
for i in $(seq 0 $((n - 1))); do
    [ -s "$d/frame_$(printf %04d "$i").png" ] && echo "$i done" || echo "$i missing"
done >"$d/shell-manifest.txt"
EOF
    cat >"$work/loop-nofork.sh" <<'EOF'
d=$1; n=$2
for ((i = 0; i < n; i++)); do
    printf -v f '%s/frame_%04d.png' "$d" "$i"
    [ -s "$f" ] && echo "$i done" || echo "$i missing"
done >"$d/shell-manifest.txt"
EOF
    log "item 6: timing (taskset -c 0, $reps runs each, interleaved)"
    local r fork_reps
    for n in 10000 100000; do
        dir=$work/frames-$n
        # The forking loop costs ~1 ms per index: fewer runs at 100,000.
        fork_reps=$reps; ((n == 100000)) && fork_reps=$((quick ? 1 : 3))
        for ((r = 0; r < reps; r++)); do
            run_timed "merge-$n" taskset -c 0 "$frames" collect "$dir"
            run_timed "status-$n" taskset -c 0 "$frames" status "$dir"
            run_timed "loop-nofork-$n" taskset -c 0 bash "$work/loop-nofork.sh" "$dir" "$n"
            # The I/O floor of any merge that reads every record: cat them all (xargs, few execs).
            run_timed "catrec-$n" taskset -c 0 bash -c 'cd "$1/.frames/records" && find . -type f -print0 | xargs -0 cat >/dev/null' _ "$dir"
            ((n == 100000)) && run_timed "merge-files-$n" taskset -c 0 "$frames" collect "$work/frames-files-$n"
            ((r < fork_reps)) && run_timed "loop-fork-$n" taskset -c 0 bash "$work/loop-fork.sh" "$dir" "$n"
        done
    done
    # The same tick on dirs of two sizes: a tick in proportion to what changed costs the same
    # on both; one that grows 10x with the dir does not.
    for n in 10000 100000; do
        log "item 6: frames watch's tick on $n (100 reruns appended per tick)"
        taskset -c 0 "$fb" tick "$work/frames-$n" 100 "$reps" >"$res/tick-$n.raw" || {
            log "FAILED: frames_bench tick"; return 1; }
        awk -v R="$res" -v N="$n" '$1 == "tick" { print $2 >> (R "/watch-tick-" N); print $5 >> (R "/watch-refresh-" N) }
            $1 == "whole" { print $2 >> (R "/watch-whole-" N) }' "$res/tick-$n.raw"
    done
    report
    rm -rf "$work"/frames-*
}

# ============ item 7: checksums vs cat
item7() {
    log "item 7: 1 GiB of frame files"
    local dir=$work/ck
    "$fb" gen-frames "$dir" 256 4
    du -sm --apparent-size "$dir" | cut -f1 >"$res/ck-mib"
    sync
    local files=("$dir"/frame_*.png)
    cat "${files[@]}" >/dev/null # warm the page cache for all
    local r
    for ((r = 0; r < reps; r++)); do
        run_timed cat taskset -c 0 cat "${files[@]}"
        run_timed checksum taskset -c 0 "$fb" checksum "${files[@]}"
        run_timed checksum-sha taskset -c 0 "$fb" checksum --sha256 "${files[@]}"
        # BLAKE3's single-core ceiling: 1 GiB hashed from a buffer in cache (no file read).
        run_timed checksum-peak taskset -c 0 "$fb" checksum-peak 1024
    done
    report
    rm -rf "$dir"
}

# ============ item 9: frames report of 10,000 frames (issue 19)
item9() {
    local n=$((quick ? 2000 : 10000)) d=$work/report r cores
    local page=(report "$work/report/dir" -o "$work/report/out/report.html" --no-queue)
    cores=$(nproc)
    log "item 9: frames report of $n frames of the demo renderer's size"
    bash "$repo/tests/bench/report-bench.sh" --make "$d" "$n"
    echo "frames=$n cores=$cores mib=$(du -sm --apparent-size "$d/dir" | cut -f1)" >"$res/report-params"
    sync
    for ((r = 0; r < creps; r++)); do
        rm -rf "$d/out/report_files"
        run_timed report-cold-1 "$frames" "${page[@]}" --jobs 1
        rm -rf "$d/out/report_files"
        run_timed report-cold-all "$frames" "${page[@]}" --jobs "$cores"
        run_timed report-warm "$frames" "${page[@]}" --jobs "$cores"
        run_timed report-warm-png "$frames" "${page[@]}" --jobs "$cores" --png
    done
    echo "page_kib=$(du -k "$d/out/report.html" | cut -f1) thumbs_kib=$(du -sk "$d/out/report_files/thumbs" | cut -f1)" >>"$res/report-params"
    # The page in headless Chromium: the page's own clock from navigation to its load event and
    # a full layout (`?timing`), and Chromium's CPU time (user + sys of all its processes) to
    # start, load the page and dump its DOM, which others' load on the machine does not change.
    if command -v chromium >/dev/null; then
        local dom cpu
        for ((r = 0; r < creps; r++)); do
            cpu=$( { TIMEFORMAT='%U %S'; time chromium --headless --no-sandbox --disable-gpu \
                --window-size=1280,900 --dump-dom "file://$d/out/report.html?timing" \
                >"$d/dom.html" 2>/dev/null; } 2>&1) || true
            dom=$(grep -o 'ready_ms=[0-9]*' "$d/dom.html" | cut -d= -f2) || true
            if [[ -z $dom ]]; then
                log "FAILED: report page in chromium: no timing"
                break
            fi
            printf '%d.%03d\n' $((dom / 1000)) $((dom % 1000)) >>"$res/report-page-ready"
            echo "$cpu" | awk '{printf "%.3f\n", $1 + $2}' >>"$res/report-page-cpu"
        done
    else
        log "item 9: no chromium: the page's load time is not measured"
    fi
    report
    rm -rf "$d"
}

# ============ item 4: the exit hook of a step without QPU, through the C host
item4() {
    local host
    host=$(ls -t "$CARGO_TARGET_DIR"/release/build/spank-test-host-*/out/spank_host 2>/dev/null | head -1 || true)
    if [ -z "$host" ]; then
        log "item 4: no spank_host binary (cargo build --release -p spank-test-host): skipped"; return 0
    fi
    log "item 4: a step's init_post_opt + exit without QPU through the C host"
    local d=$work/stepexit
    install -d -m 0700 "$d" "$d/state"
    printf '%s\n' '{"resources": [{"name": "garnet", "type": "iqm-server", "environment": {"QRMI_IQM_ISA_ENDPOINT": "http://127.0.0.1:9/iqm", "QRMI_IQM_ISA_TOKEN": "t"}, "status_check": false}]}' >"$d/qrmi_config.json"
    chmod 0600 "$d/qrmi_config.json"
    # Another job's lease in the state directory, as on a busy QPU node.
    printf '{}' >"$d/state/lease-5-garnet.json"
    local base=("$rel/libspank_qrmi.so" --context remote --arg "$d/qrmi_config.json" --arg "state_dir=$d/state" --item job_id=77 --call init)
    local many=() i r
    for ((i = 0; i < 1000; i++)); do many+=(--call init_post_opt --call exit); done
    for ((r = 0; r < reps; r++)); do
        run_timed stepexit-load "$host" "${base[@]}"
        run_timed stepexit-1 "$host" "${base[@]}" --call init_post_opt --call exit
        run_timed stepexit-1001 "$host" "${base[@]}" --call init_post_opt --call exit "${many[@]}"
    done
    report
}

# ============ item 8: QPU acquire + release
item8() {
    local cycles=$((quick ? 300 : 1000))
    log "item 8: QPU acquire+release, $cycles cycles per type"
    # The lease's fsyncs must not wait for the writeback of what earlier items wrote (item 7's
    # 1 GiB of frames): flushed first, so the disk's own flush latency is what is measured.
    sync
    "$qpu_bench" "$cycles" >"$res/qpu.txt"
    # The same cycles with the backends called inside the benchmark's process: the difference
    # is what the helper executable's two starts cost.
    "$qpu_bench" "$cycles" --in-process >"$res/qpu-in-process.txt"
    report
}

# ============ cluster items
cl=tests/cluster/cluster.sh
# The shared dir stays a local directory (up --no-gluster) and the cluster has no accounting
# (--no-accounting): the numbers measure our plugins' cost and stay comparable with earlier
# runs, not GlusterFS's FUSE latency or slurmctld's traffic to slurmdbd (BENCHMARKS.md says so).
up_extra=()
cluster_up() { # $1: empty | plugins | plugins-debug | plugins-private (up_extra set)
    local stage=$work/stage
    if [ "$1" = empty ]; then
        : >"$work/plugstack-empty.conf"
        SPANK_SLURM_DEBUG=info "$cl" up --no-gluster --no-accounting --plugstack "$work/plugstack-empty.conf" >"$res/up-$1.log" 2>&1
    else
        rm -rf "$stage"; mkdir -p "$stage"
        local scratch; scratch=$("$cl" dir)
        install -m 0755 "$rel/libspank_qrmi.so" "$stage/spank_qrmi.so"
        install -m 0755 "$rel/libspank_frames.so" "$stage/spank_frames.so"
        # Its result-capture helper, run from the plugin's directory (spank_frames(8)).
        install -m 0755 "$rel/spank_frames-capture" "$stage/"
        # The admin snippets as shipped (default log level), pointed at the cluster's config;
        # plugins-debug (item 3) adds log_level=debug to both and runs slurmd at debug, so
        # each callback's "hook ... took N us" line reaches the node logs.
        local extra='' level=info
        [ "$1" = plugins-debug ] && extra=' log_level=debug' level=debug
        sed -e "s|/etc/slurm/qrmi_config.json|$scratch/etc/qrmi_config.json state_dir=$scratch/qrmi-state/%n$extra|" \
            plugstack.conf.d/spank_qrmi.conf >"$stage/spank_qrmi.conf"
        sed -E "s/^((required|optional)[[:space:]]+[^[:space:]]+\.so.*)\$/\1$extra/" \
            plugstack.conf.d/spank_frames.conf >"$stage/spank_frames.conf"
        SPANK_SLURM_DEBUG=$level "$cl" up --no-gluster --no-accounting --plugins "$stage" "${up_extra[@]}" >"$res/up-$1.log" 2>&1
        # A token-only QPU (iqm-server, no status check: no HTTP) for the "options used" case.
        install -d -m 0755 "$scratch/etc"
        printf '%s\n' '{"resources": [{"name": "garnet", "type": "iqm-server", "environment": {"QRMI_IQM_ISA_ENDPOINT": "http://127.0.0.1:9/iqm", "QRMI_IQM_ISA_TOKEN": "bench-token"}, "status_check": false}]}' \
            >"$scratch/etc/qrmi_config.json"
        chmod 0600 "$scratch/etc/qrmi_config.json"
    fi
    # shellcheck disable=SC1090
    . "$("$cl" dir)/cluster.env"
}
cluster_down() { "$cl" down >>"$res/down.log" 2>&1 || true; }
asuser() { "$cl" as-user "$@"; }

# sdiag's per-message-type RPC counts, as "TYPE count" lines.
sdiag_counts() {
    sdiag | sed -nE '/Remote Procedure Call statistics by message type/,/Remote Procedure Call statistics by user/ s/^[[:space:]]*([^[:space:]]+)[[:space:]].*count:[[:space:]]*([0-9]+).*/\1 \2/p'
}

# run_array NAME OPTS...: submits $tasks trivial tasks, each touching a file in the shared dir as
# its last act; the time is submission to the newest such file (sbatch --wait's own return is
# quantized by its polling of the controller, seconds apart). Read after sbatch --wait returns.
run_array() {
    local name=$1 t0 d last n
    shift
    d=$SPANK_SHARED_DIR/array-$name-$RANDOM
    asuser mkdir "$d"
    t0=$EPOCHREALTIME
    if ! asuser sbatch --wait --array=0-$((tasks - 1)) -p normal -o /dev/null "$@" --wrap "touch $d/\$SLURM_ARRAY_TASK_ID" >/dev/null 2>"$res/$name.err"; then
        log "FAILED: $name"; cat "$res/$name.err" >&2; return 1
    fi
    n=$(find "$d" -type f | wc -l)
    [ "$n" -eq "$tasks" ] || { log "FAILED: $name: $n of $tasks tasks ran"; return 1; }
    # The newest modification time, "seconds.nanos" cut to micros.
    last=$(find "$d" -type f -printf '%T@\n' | sort -g | tail -1)
    local frac=${last#*.}000000
    seconds "$t0" "${last%.*}.${frac:0:6}" >>"$res/$name"
    echo touch >"$res/array-method"
}
# settle: waits (untimed) until the controller lists no job of this cluster and slurmd had a
# moment to send what follows a job's end (epilog, MESSAGE_EPILOG_COMPLETE), so an sdiag or log
# snapshot taken next holds all of a workload's messages and none of the next one's.
# It asks the nodes' process tables, not the controller (an squeue here would show up in sdiag).
cluster_stepds() { # PIDs of the processes named slurmstepd in this cluster's node namespaces
    local inos=() n pid ino
    for n in $SPANK_NODES; do inos+=("$(stat -L -c %i "/run/netns/s$SPANK_CLUSTER_ID-$n" 2>/dev/null)"); done
    for pid in $(pgrep -x slurmstepd || true); do
        ino=$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) || continue
        [[ " ${inos[*]} " == *" $ino "* ]] && echo "$pid"
    done
    return 0
}
settle() {
    local i
    for ((i = 0; i < 120; i++)); do
        [ -z "$(cluster_stepds)" ] && break
        sleep 0.5
    done
    sleep 1.5
}
# Options may hold @RUN@: replaced by a name unique to each workload run, so that every run
# gets a fresh --frame-dir as each job of a user would (records do not pile up across runs).
launch_workloads() { # $1: config label; $2...: extra srun/sbatch options
    local label=$1 r
    shift
    local all=("$@") opts
    for ((r = 0; r < creps; r++)); do
        opts=("${all[@]//@RUN@/steps-$r}")
        sdiag_counts >"$res/sdiag-steps-$label.$r.before"
        run_timed "steps-$label" "$repo/$cl" as-user salloc -N2 -p normal "${opts[@]}" \
            bash -c "for i in \$(seq $steps); do srun -N2 -n2 ${opts[*]} true || exit 1; done"
        settle
        sdiag_counts >"$res/sdiag-steps-$label.$r.after"
    done
    for ((r = 0; r < creps; r++)); do
        opts=("${all[@]//@RUN@/array-$r}")
        sdiag_counts >"$res/sdiag-array-$label.$r.before"
        run_array "array-$label" "${opts[@]}"
        settle
        sdiag_counts >"$res/sdiag-array-$label.$r.after"
    done
}

# RSS (KiB) of this cluster's slurmstepd processes while a 2-node step sleeps: "KiB cmdline" lines.
stepd_rss() { # $1: label; $2...: options
    local label=$1
    shift
    asuser srun -N2 -n2 -p normal "$@" sleep 6 &
    local bg=$! inos=() n pid kib
    sleep 4
    for n in c1 c2; do inos+=("$(stat -L -c %i "/run/netns/s$SPANK_CLUSTER_ID-$n")"); done
    : >"$res/rss-$label"
    : >"$res/rollup-$label"
    for pid in $(pgrep -x slurmstepd || true); do
        local ino
        ino=$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) || continue
        [[ " ${inos[*]} " == *" $ino "* ]] || continue
        kib=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || continue
        [ -n "$kib" ] && echo "$kib $(tr '\0' ' ' <"/proc/$pid/cmdline")" >>"$res/rss-$label"
        # What of it is this process's own (private) and its proportional share of what it
        # shares (PSS): "VmRSS PSS PRIVATE" in KiB.
        awk -v rss="$kib" '/^Pss:/ { pss = $2 } /^Private_(Clean|Dirty):/ { priv += $2 }
            END { if (pss != "") print rss, pss, priv }' "/proc/$pid/smaps_rollup" >>"$res/rollup-$label" 2>/dev/null || true
    done
    # The helper programs the plugins run beside a task (spank_frames' result capture: comm
    # truncated to 15 characters), each its own small executable: reported apart, as what they are.
    : >"$res/rss-helpers-$label"
    for pid in $(pgrep -x spank_frames-ca || true); do
        local ino
        ino=$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) || continue
        [[ " ${inos[*]} " == *" $ino "* ]] || continue
        kib=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || continue
        [ -n "$kib" ] && echo "$kib $(readlink "/proc/$pid/exe")" >>"$res/rss-helpers-$label"
    done
    wait "$bg" || true
}

# ---- item 3: each callback's own time, from the plugins' debug lines
# "<plugin>: hook <hook> in <context> context took <N> us" (spank/src/export.rs). Remote and
# job_script context lines land in the nodes' slurmd logs (slurmd at debug); allocator context
# lines on sbatch/salloc's stderr with -vv. srun's local context cannot be seen: srun runs init
# and init_post_opt before it applies -v (Slurm 22.05 srun), so its debug lines are dropped.
hook_lines() { sed -nE 's/.*(spank_[a-z_]+): hook ([a-z_]+) in ([a-z_]+) context took ([0-9]+) us.*/\1 \3 \2 \4/p'; }
log_mark() { local f; for f in "$SPANK_LOG_DIR"/slurmd-*.log; do echo "$f $(stat -c %s "$f")"; done >"$1"; }
log_since() { local f off; while read -r f off; do tail -c +"$((off + 1))" "$f"; done <"$1"; }
# log_save MARK PREFIX: each node's new log text to PREFIX-<node> (kept with the results).
log_save() { local f off; while read -r f off; do tail -c +"$((off + 1))" "$f" >"$2-$(basename "$f" .log)"; done <"$1"; }
hook_workloads() { # $1: config label; $2...: extra srun/sbatch options
    local label=$1 m=$res/logmark i
    shift
    local all=("$@") opts
    opts=("${all[@]//@RUN@/steps}")
    log_mark "$m"
    asuser salloc -vv -N2 -p normal "${opts[@]}" \
        bash -c "for i in \$(seq $hsteps); do srun -N2 -n2 ${opts[*]} true || exit 1; done" \
        >/dev/null 2>"$res/hookrun-steps-$label.err" || { log "FAILED: hook steps $label"; tail "$res/hookrun-steps-$label.err" >&2; return 1; }
    settle
    { hook_lines <"$res/hookrun-steps-$label.err"; log_since "$m" | hook_lines; } >"$res/hooks-$label-steps"
    opts=("${all[@]//@RUN@/array}")
    log_mark "$m"
    asuser sbatch -vv --wait --array=0-$((htasks - 1)) -p normal -o /dev/null "${opts[@]}" --wrap true \
        >/dev/null 2>"$res/hookrun-array-$label.err" || { log "FAILED: hook array $label"; tail "$res/hookrun-array-$label.err" >&2; return 1; }
    settle
    { hook_lines <"$res/hookrun-array-$label.err"; log_since "$m" | hook_lines; } >"$res/hooks-$label-array"
    log_save "$m" "$res/slurmdlog-$label-array"
    # More allocator-context samples: submissions checked and not queued (sbatch --test-only
    # runs the same init_post_opt as a real submission).
    opts=("${all[@]//@RUN@/submit}")
    for ((i = 0; i < hsubmits; i++)); do
        (asuser sbatch -vv --test-only -p normal "${opts[@]}" --wrap true 2>&1 >/dev/null || true) | hook_lines
    done >"$res/hooks-$label-submit"
}
hook_pass() {
    log "cluster: both plugins at log_level=debug (item 3: hook times)"
    loadmark "cluster: hook pass (debug)"
    cluster_up plugins-debug
    settle
    # slurmd context: slurm_spank_init when each slurmd started.
    cat "$SPANK_LOG_DIR"/slurmd-*.log | hook_lines >"$res/hooks-slurmd"
    hook_workloads unused
    hook_workloads used --frame-dir="$SPANK_SHARED_DIR/hook-frames-@RUN@" --qpu=garnet
    cluster_down
}

# ============ item 10: frames gather of node-local frames (issue 14)
# An array writes gn frames of 100 KiB with --frame-local into each node's own --private-dir
# (untimed). Timed: `frames gather DIR --to NEW` (as the user: one srun step per node streaming
# its part, every frame checked), a second gather into the same dir (nothing new), and the
# floor: `cp -r` of both nodes' parts (from the host's view of them) into a new dir, in parallel;
# the page cache is warm for all three (the frames were just written or read).
gather_pass() {
    local gn=$((smoke ? 40 : 1000)) pdir=/tmp/spank-bench-private-$SPANK_CLUSTER_ID r d dest
    log "cluster: --private-dir (item 10: frames gather of $gn frames)"
    loadmark "cluster: gather (item 10)"
    up_extra=(--private-dir "$pdir")
    cluster_up plugins-private
    up_extra=()
    install -d -m 0755 "$SPANK_CLUSTER_DIR/bin"
    install -m 0755 "$frames" "$SPANK_CLUSTER_DIR/bin/frames"
    settle
    d=$pdir/gather
    asuser sbatch --wait --array=0-$((gn - 1)) -p normal -o /dev/null --frame-dir="$d" --frame-local \
        --wrap 'head -c 102400 /dev/urandom > "$FRAME_PATH"' >/dev/null 2>"$res/gather-array.err" ||
        { log "FAILED: item 10 array"; cat "$res/gather-array.err" >&2; return 1; }
    settle
    echo "frames=$gn kib=100 nodes=2 c1=$(find "$SPANK_PRIVATE_BACKING/c1/gather" -name '*.png' | wc -l) c2=$(find "$SPANK_PRIVATE_BACKING/c2/gather" -name '*.png' | wc -l)" >"$res/gather-params"
    for ((r = 0; r < creps; r++)); do
        dest=$SPANK_SHARED_DIR/gathered-$r
        run_timed gather-full "$repo/$cl" as-user "$SPANK_CLUSTER_DIR/bin/frames" gather "$d" --to "$dest" --nodes c1,c2
        run_timed gather-again "$repo/$cl" as-user "$SPANK_CLUSTER_DIR/bin/frames" gather "$d" --to "$dest" --nodes c1,c2
        [ "$(find "$dest" -name '*.png' | wc -l)" -eq "$gn" ] || { log "FAILED: item 10: gathered $(find "$dest" -name '*.png' | wc -l) of $gn"; return 1; }
        rm -rf "$dest"
        dest=$SPANK_SHARED_DIR/copied-$r
        mkdir -p "$dest"
        run_timed gather-cp bash -c "cp -r '$SPANK_PRIVATE_BACKING/c1/gather' '$dest/c1' & cp -r '$SPANK_PRIVATE_BACKING/c2/gather' '$dest/c2' & wait"
        rm -rf "$dest"
    done
    cluster_down
}

cluster_items() {
    trap cluster_down EXIT
    local fd
    log "cluster: empty plugstack (SPANK_CLUSTER_ID=$SPANK_CLUSTER_ID)"
    loadmark "cluster: empty plugstack"
    cluster_up empty
    launch_workloads empty
    stepd_rss empty
    cluster_down
    log "cluster: both plugins"
    loadmark "cluster: both plugins"
    cluster_up plugins
    launch_workloads unused
    fd=$SPANK_SHARED_DIR/bench-frames
    launch_workloads used --frame-dir="$fd-@RUN@" --qpu=garnet
    stepd_rss unused
    stepd_rss used --frame-dir="$fd-rss" --qpu=garnet
    cluster_down
    report
    hook_pass || log "item 3: the hook pass failed; its numbers are partial or missing"
    cluster_down
    report
    gather_pass || log "item 10: the gather pass failed; its numbers are partial or missing"
    cluster_down
    trap - EXIT
    report
}

# The sizes of the .so files measured.
echo "$(stat -c %s "$rel/libspank_qrmi.so") $(stat -c %s "$rel/libspank_frames.so") $(stat -c %s "$rel/spank-qrmi-backend")" >"$res/so-sizes"
report
# One hold of the heavy-work lock for everything timed (local and cluster items).
heavy_begin
if ((local_items)); then
    loadmark "item 6 (collection)"; item6
    loadmark "item 7 (checksums)"; item7
    loadmark "item 8 (QPU acquire/release)"; item8
    loadmark "item 4 (step exit, C host)"; item4
    loadmark "item 9 (frames report)"; item9
fi
if ((cluster)); then
    if [ "$(id -u)" -ne 0 ]; then
        log "not root: skipping the cluster items"
    else
        cluster_items
    fi
fi
loadmark "end"
heavy_end
report
rm -rf "$work"/ck "$work"/frames-*
log "wrote $out"
