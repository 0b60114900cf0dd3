#!/usr/bin/env bash
# Writes (or with --check, verifies) spank-frames/hot-symbols.txt and spank-qrmi/hot-symbols.txt:
# the functions each plugin runs when a job does not use it, in the order the linker should
# place them (issue 17, slurmstepd's resident memory). Every Slurm process that loads a plugin
# maps its code; the kernel then makes resident 64 KiB around each page a call touches
# (fault-around), so ~80 small functions scattered over a 1 MiB .text cost ~0.5 MiB of resident
# text in every slurmstepd. Placed first and together (a linker script that build.rs makes of the
# list, spank/build/link_order.rs), the same calls touch one or two 64 KiB windows.
#
#   tests/hot-symbols.sh            regenerate both files (after changing what an unused hook runs)
#   tests/hot-symbols.sh --check    exit 1 when a file no longer matches the build (symbols
#                                   renamed by a toolchain or dependency change, new functions
#                                   on the unused path) or when a release build linked as the
#                                   packages link it does not place them first
#
# How: the release plugins are built with their static symbol tables (SPANK_QRMI_KEEP_SYMBOLS)
# and without the ordering in target/hot-symbols, and the C host (tests/host) runs each
# Slurm context's hook sequence without the plugin's options under callgrind, which names every
# function executed in the plugin. The host gets a node's setup, never this machine's: a
# slurm.conf with QPU nodes, the plugstack arguments as plugstack.conf.d ships them. Order:
# slurmstepd's sequence first (the remote context: init, init_post_opt, user_init, one task,
# exit), then srun's, sbatch's and slurmd's, then the frames plugin's used path (--frame-dir),
# so what a job that does use it runs comes next.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
check=0
[ "${1:-}" = --check ] && check=1
command -v valgrind >/dev/null || { echo "hot-symbols: valgrind is not installed" >&2; exit 1; }

target=$repo/target/hot-symbols
# Built without the ordering (SPANK_NO_LINK_ORDER): valgrind names only functions in .text
# itself, so what is already placed before it would drop out of the next list.
SPANK_NO_LINK_ORDER=1 SPANK_QRMI_KEEP_SYMBOLS=1 CARGO_TARGET_DIR=$target \
    cargo build --release --quiet -p spank-qrmi -p spank-frames
# The C host is built by the spank-test-host crate's build script (the unit tests build it).
host_target=${CARGO_TARGET_DIR:-$repo/target}
cargo build --quiet -p spank-test-host
host=$(ls -t "$host_target"/debug/build/spank-test-host-*/out/spank_host | head -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Legacy-mangled names end in a hash that changes with the set of packages built together, the
# toolchain and the target: the lists hold the names with the hash as a wildcard (build.rs's
# linker script matches sections that way too).
# Callgrind marks a recursive function's inner calls `NAME'2`: that is the same function.
unhash() { sed -E "s/'[0-9]+\$//; s/17h[0-9a-f]{16}E\$/17h*E/"; }
listed_in() { grep -v '^#' "$1" | sort -u; } # the functions a hot-symbols.txt lists

# trace PLUGIN.so HOST-ARGS...: the plugin's functions callgrind saw in the host process itself,
# in first-seen order (a task's forked child runs task_init and execs the task: not this
# process's memory, as a slurmstepd's task child is not slurmstepd's).
trace() {
    local so=$1 pid
    shift
    valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
        --callgrind-out-file="$work/cg.%p" "$host" "$so" "$@" >/dev/null 2>&1 &
    pid=$!
    wait "$pid" || true
    [ -s "$work/cg.$pid" ] || { echo "hot-symbols: callgrind wrote nothing for $so $*" >&2; exit 1; }
    awk -v so="$(basename "$so")" '
        /^ob=/ { ob = substr($0, 4) }
        /^fn=/ { f = substr($0, 4); if (index(ob, so) && f !~ /^0x/ && !(f in seen)) { seen[f] = 1; print f } }
    ' "$work/cg.$pid" | unhash
    rm -f "$work"/cg.*
}

# What a node has: a slurm.conf (spank_qrmi reads it for QPU GRES; this host's may have none or
# another, so the trace reads this one), and the plugstack lines as plugstack.conf.d ships them.
cat >"$work/slurm.conf" <<'EOF'
ClusterName=hot
SlurmctldHost=ctl
GresTypes=qpu
NodeName=c[1-2] CPUs=2 State=UNKNOWN
NodeName=q[1-2] CPUs=2 Gres=qpu:ibm_torino:1 State=UNKNOWN
PartitionName=normal Nodes=c[1-2] Default=YES
PartitionName=quantum Nodes=q[1-2]
EOF
export SLURM_CONF=$work/slurm.conf
mkdir -p "$work/state"
printf '%s\n' '{"resources": [{"name": "garnet", "type": "iqm-server", "environment": {"QRMI_IQM_ISA_ENDPOINT": "http://127.0.0.1:9/iqm", "QRMI_IQM_ISA_TOKEN": "t"}, "status_check": false}]}' >"$work/qrmi_config.json"
plugstack_args() { # $1: plugin
    [ "$1" = qrmi ] && printf '%s\n' --arg "$work/qrmi_config.json" --arg "state_dir=$work/state"
    return 0
}

job=(--item job_id=4242 --item step_id=0 --item uid=0 --item gid=0 --item nnodes=1 --item node_id=0
    --item local_task_count=1 --item total_task_count=1 --item task_id=0 --item task_global_id=0)
sequences() { # $1: plugin .so, $2...: its plugstack arguments
    local so=$1
    shift
    trace "$so" "$@" --context remote "${job[@]}" --call init --call init_post_opt --call user_init --task true --call exit
    trace "$so" "$@" --context local "${job[@]}" --call init --call init_post_opt --call local_user_init --call exit
    trace "$so" "$@" --context allocator --call init --call init_post_opt --call exit
    trace "$so" "$@" --context slurmd --call init --call exit
}

rc=0
for plugin in frames qrmi; do
    so=$target/release/libspank_$plugin.so
    file=spank-$plugin/hot-symbols.txt
    {
        mapfile -t args < <(plugstack_args "$plugin")
        sequences "$so" "${args[@]}"
        if [ "$plugin" = frames ]; then
            dir=$work/frames-dir
            mkdir -p "$dir"
            trace "$so" --context remote "${job[@]}" --call init --option "frame-dir=$dir" \
                --call init_post_opt --call user_init --task true --call exit
        fi
    } | awk '!seen[$0]++' >"$work/$plugin.new"
    if ((check)); then
        # Both ways: listed functions the build no longer has, traced functions not listed.
        nm --defined-only "$so" | awk '{print $3}' | unhash | sort -u >"$work/$plugin.defined"
        listed=$(listed_in "$file")
        gone=$(comm -23 <(echo "$listed") "$work/$plugin.defined" | grep -c . || true)
        new=$(comm -13 <(echo "$listed") <(sort -u "$work/$plugin.new") | grep -c . || true)
        total=$(echo "$listed" | grep -c . || true)
        echo "hot-symbols: $file: $total listed, $gone not in the build, $new traced but not listed"
        if ((gone * 10 > total || new * 10 > total)); then
            echo "hot-symbols: $file is stale: run tests/hot-symbols.sh and commit the result" >&2
            rc=1
        fi
    else
        {
            echo "# Written by tests/hot-symbols.sh: functions spank_$plugin.so runs when a job does not"
            echo "# use it, placed before .text by build.rs (a linker script; 17h*E: any hash). Regenerate,"
            echo "# do not edit."
            cat "$work/$plugin.new"
        } >"$file"
        echo "hot-symbols: wrote $file ($(wc -l <"$work/$plugin.new") functions)"
    fi
done

# With --check, also that a release build as the packages make it (another set of packages
# built together, so other symbol hashes) has the listed functions in .text.spank_hot: the
# lists being current proves nothing if the link does not apply them.
if ((check)); then
    SPANK_QRMI_KEEP_SYMBOLS=1 CARGO_TARGET_DIR=$target \
        cargo build --release --quiet -p spank-qrmi -p spank-frames -p frames
    for plugin in frames qrmi; do
        so=$target/release/libspank_$plugin.so
        read -r start size < <(readelf -SW "$so" |
            awk '$2 == ".text.spank_hot" { print strtonum("0x" $4), strtonum("0x" $6) }') ||
            { echo "hot-symbols: $so has no .text.spank_hot: the ordering was not applied" >&2; rc=1; continue; }
        placed=$(nm --defined-only "$so" |
            awk -v a="$start" -v b="$((start + size))" '{ x = strtonum("0x" $1) } x >= a && x < b { print $3 }' |
            unhash | sort -u | comm -12 - <(listed_in "spank-$plugin/hot-symbols.txt") | grep -c . || true)
        total=$(listed_in "spank-$plugin/hot-symbols.txt" | grep -c .)
        echo "hot-symbols: $so: $placed of $total listed functions placed first"
        if ((placed * 10 < total * 9)); then
            echo "hot-symbols: $so: fewer than 90% of spank-$plugin/hot-symbols.txt placed first" >&2
            rc=1
        fi
    done
fi
exit "$rc"
