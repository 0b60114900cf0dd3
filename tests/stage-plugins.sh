#!/usr/bin/env bash
# Builds both plugins (release) and stages them, with the admin snippets from
# plugstack.conf.d/, into one directory for `tests/cluster/cluster.sh up --plugins DIR`.
# The staged snippets add log_level=debug so node logs show the plugins at work. The user
# tools (frames CLI, demo renderer) go to DIR/bin, for the cluster's shared directory.
# PLUGINS_FROM=D (e.g. target/slurm-trixie/release, from tests/versions/build-all.sh) takes
# the two plugin .so from D instead: plugins built against another Slurm release's headers.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/target/stage}
scratch=${SPANK_CLUSTER_DIR:-$(bash "$repo/tests/cluster/cluster.sh" dir)}
cd "$repo"
cargo build --release --quiet -p spank-qrmi -p qrmi-usage -p spank-frames -p frames -p blackhole-render
rm -rf "$out"
mkdir -p "$out/bin"
rel=${CARGO_TARGET_DIR:-target}/release
install -m 0755 "$rel/frames" "$rel/blackhole-render" "$rel/qrmi-usage" "$out/bin/"
for plugin in spank_qrmi spank_frames; do
    install -m 0755 "${PLUGINS_FROM:-$rel}/lib$plugin.so" "$out/$plugin.so"
    # The cluster's own qrmi_config.json (written by the tests) and per-node state dirs.
    sed -E -e 's/^((required|optional)[[:space:]]+[^[:space:]]+\.so.*)$/\1 log_level=debug/' \
        -e "s|/etc/slurm/qrmi_config.json|$scratch/etc/qrmi_config.json state_dir=$scratch/qrmi-state/%n http_timeout=3 http_connect_timeout=2 warden_munge=yes|" \
        "plugstack.conf.d/$plugin.conf" >"$out/$plugin.conf"
done
echo "$out"
