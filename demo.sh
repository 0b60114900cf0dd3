#!/usr/bin/env bash
# The newcomer's first command: builds both plugins, brings up the local namespaced Slurm
# cluster with them installed, and runs sample jobs through them. The cluster stays up for
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
# shellcheck disable=SC1091
. "${SPANK_CLUSTER_DIR:-/tmp/spank-cluster}/cluster.env"
as_user() { "$cluster" as-user "$@"; }

echo
echo "== Our options, as users see them in sbatch --help"
as_user sbatch --help | grep -E -A1 -- '--(qpu|frame-dir)=' || true

echo
echo "== srun on all four nodes (each its own host), both plugins loaded"
as_user srun -p all -N4 --label hostname | sort

echo
echo "== a batch job on the quantum partition"
as_user sbatch --wait -p quantum -N2 -o "$SPANK_SHARED_DIR/demo-%j.out" --wrap 'srun hostname' >/dev/null
cat "$SPANK_SHARED_DIR"/demo-*.out | sort

echo
echo "== a bad option value is refused before the job is queued"
as_user sbatch --frame-dir=relative/dir --wrap true || true

echo
echo "== what the nodes logged about our plugins (debug level)"
grep -h "spank_\(qrmi\|frames\): loaded in remote" "$SPANK_LOG_DIR"/slurmd-*.log | tail -n 4

echo
if [ "${1:-}" = "--down" ]; then
    "$cluster" down
else
    echo "The cluster is up. Try: tests/cluster/cluster.sh as-user srun -p all -N4 hostname"
    echo "Tear it down with:   tests/cluster/cluster.sh down"
fi
