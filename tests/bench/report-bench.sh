#!/usr/bin/env bash
# Times `frames report` on a frame dir of N frames (default 10,000) of the demo renderer's size
# (320x180 PNG), on one thread and on every core, cold (no thumbnail cached) and warm (a second
# report: every thumbnail cached). No cluster: the records are written here as the plugin
# writes them, and the report runs with --no-queue. The frames are 48 real renders of
# blackhole-render, each copied with a distinct PNG text chunk (so every file has its own
# checksum and decodes like a real frame). Prints the numbers and writes them to
# target/bench/report-bench.txt. Usage: tests/bench/report-bench.sh [N]
# `--make WORK N` only makes the frame dir (WORK/dir) and exits: tests/bench/run.sh (item 9)
# times the reports itself.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
make_only=0
target=${CARGO_TARGET_DIR:-$repo/target}
work=$target/bench/report-bench
if [[ ${1:-} == --make ]]; then
    make_only=1 work=${2:?usage: report-bench.sh --make WORK N} n=${3:?usage: report-bench.sh --make WORK N}
else
    n=${1:-10000}
fi
cargo build --release --quiet -p frames -p blackhole-render
frames=$target/release/frames
render=$target/release/blackhole-render
results=$target/bench/report-bench.txt
rm -rf "$work"
mkdir -p "$work/base" "$work/dir/.frames/records" "$work/out"
for i in $(seq 0 47); do
    "$render" --time "$(echo "$i * 0.5" | bc)" --out "$work/base/$i.png"
done
python3 - "$work" "$n" <<'EOF'
import json, os, struct, sys, zlib
work, n = sys.argv[1], int(sys.argv[2])
base = [open(f"{work}/base/{i}.png", "rb").read() for i in range(48)]
d = f"{work}/dir"
nodes = [f"n{k:02d}" for k in range(1, 9)]
lane_end = {}
for i in range(n):
    png = base[i % 48]
    text = b"Comment\0frame %d" % i
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
    iend = png.rindex(b"IEND") - 4
    frame = png[:iend] + chunk + png[iend:]
    path = f"{d}/frame_{i:05d}.png"
    with open(path, "wb") as f:
        f.write(frame)
    node = nodes[i % len(nodes)]
    lane = (i // len(nodes)) % 4
    start = lane_end.get((node, lane), 1_700_000_000.0)
    end = start + 0.08 + (i % 7) * 0.01
    lane_end[(node, lane)] = end
    failed = i % 997 == 5
    rec = {
        "version": 2, "index": i, "attempt": 0, "job_id": 100000 + i, "array_job_id": 100000,
        "array_task_id": i, "step": "batch", "task_id": 0, "task_count": 1,
        "job_task_count": None, "uid": os.getuid(), "submission": None, "node": node,
        "exit_code": 3 if failed else 0, "signal": None, "core_dumped": False,
        "start_time": start, "end_time": end, "frame_path": path, "frame_size": len(frame),
        "frame_sha256": None, "frame_blake3": None,
        "results": [{"frame_time": i * 0.5, "mean_luminance": 0.17, "render_ms": 84.1}],
        "result_errors": [], "warnings": [], "status": "failed" if failed else "done",
        "reason": "exit code 3" if failed else None,
    }
    with open(f"{d}/.frames/records/{i:08d}.a0.j{100000 + i}.sbatch.t0.json", "w") as f:
        json.dump(rec, f)
EOF
((make_only)) && exit 0
cores=$(nproc)
# Wall time, and CPU time (user + sys): on a machine others share, the CPU time is the figure
# that does not depend on their load.
run() { # LABEL ARGS...
    local label=$1 t
    shift
    t=$( { TIMEFORMAT='%R %U %S'; time "$frames" report "$work/dir" -o "$work/out/report.html" \
        --no-queue "$@" >/dev/null 2>"$work/last.err"; } 2>&1)
    read -r real user sys <<<"$t"
    printf '%-36s %8.2f s wall %8.2f s CPU (load %s)\n' "$label" "$real" "$(echo "$user + $sys" | bc)" \
        "$(cut -d' ' -f1 /proc/loadavg)"
}
{
    echo "frames report, $n frames of 320x180 PNG ($(du -sh "$work/dir" | cut -f1) of frames), $(nproc) core(s), $(date -u +%F)"
    rm -rf "$work/out/report_files"
    run "cold, 1 thread (--jobs 1)" --jobs 1
    rm -rf "$work/out/report_files"
    run "cold, every core (--jobs $cores)" --jobs "$cores"
    run "warm (all cached), every core" --jobs "$cores"
    run "warm, every core, with --png" --jobs "$cores" --png
    echo "page: $(du -h "$work/out/report.html" | cut -f1); thumbnails: $(du -sh "$work/out/report_files/thumbs" | cut -f1)"
} | tee "$results"
echo "results: $results"
