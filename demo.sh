#!/usr/bin/env bash
# The newcomer's first command: builds both plugins, brings up the local namespaced Slurm
# cluster with them installed, and runs the main workflow through them: a black-hole
# animation rendered one frame per array task, collected, assembled into a video, and
# reported as an HTML page (contact sheet, node timeline, results). The cluster stays up for
# you to try things (tests/cluster/cluster.sh as-user srun ...); `./demo.sh --down` tears it
# down at the end instead. Run as root on Debian 12.
set -euo pipefail
repo=$(cd "$(dirname "$0")" && pwd)
cd "$repo"
[ "$(id -u)" -eq 0 ] || { echo "demo.sh must run as root (it starts daemons in namespaces)" >&2; exit 1; }

bash tests/install-deps.sh
stage=$(tests/stage-plugins.sh)
cluster=tests/cluster/cluster.sh
# debug: the plugins log "loaded in remote context" at debug level, the evidence tests look for.
SPANK_SLURM_DEBUG=debug "$cluster" up --plugins "$stage"
# The user tools, in the (root-owned) scratch dir where every node and the test user find them.
tools="${SPANK_CLUSTER_DIR:-$(bash "$repo/tests/cluster/cluster.sh" dir)}/bin"
install -d -m 0755 "$tools"
install -m 0755 "$stage"/bin/* "$tools/"
# shellcheck disable=SC1091
. "${SPANK_CLUSTER_DIR:-$(bash "$repo/tests/cluster/cluster.sh" dir)}/cluster.env"
as_user() { "$cluster" as-user "$@"; }

echo
echo "== Our options, as users see them in sbatch --help"
as_user sbatch --help | grep -E -- '--(qpu|frame-dir|frame-pattern|frame-t0|frame-dt|result-prefix)=' || true

echo
echo "== Rendering a black-hole animation: one frame per array task, spread over nodes c1 and c2"
frames_dir="$SPANK_SHARED_DIR/frames/bh"
as_user sh -c "cat > '$SPANK_SHARED_DIR/render.sbatch'" <demo/render.sbatch
as_user rm -rf "$frames_dir"
job=$(as_user sbatch --wait --parsable -p normal --array=0-47 -o /dev/null \
    --frame-dir="$frames_dir" --frame-t0=0 --frame-dt=0.5 \
    --export=ALL,BLACKHOLE_RENDER="$tools/blackhole-render" \
    "$SPANK_SHARED_DIR/render.sbatch")
echo "array job $job: 48 tasks ended"

echo
echo "== frames status: every task's record, merged by the last one to finish"
as_user "$tools/frames" status "$frames_dir"

echo
echo "== frames video: the frames in manifest order, assembled by ffmpeg"
as_user "$tools/frames" video "$frames_dir" -o "$SPANK_SHARED_DIR/blackhole.mp4"
ls -l "$SPANK_SHARED_DIR/blackhole.mp4"

echo
echo "== frames report: contact sheet, node timeline and results of the run, as one page"
as_user "$tools/frames" report "$frames_dir" -o "$SPANK_SHARED_DIR/blackhole-report.html" --png
echo "Open file://$SPANK_SHARED_DIR/blackhole-report.html in a browser (its images: $SPANK_SHARED_DIR/blackhole-report_files/)"

echo
echo "== a bad option value is refused before the job is queued"
as_user sbatch --frame-dir=relative/dir --wrap true || true

echo
if [ "${1:-}" = "--down" ]; then
    "$cluster" down
else
    echo "The cluster is up. Try: tests/cluster/cluster.sh as-user srun -p all -N4 hostname"
    echo "Tear it down with:   tests/cluster/cluster.sh down"
fi
