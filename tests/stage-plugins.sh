#!/usr/bin/env bash
# Builds both plugins (release), packages them as admins get them (packaging/deb/build.sh: the
# spank-plugins and spank-plugins-tools .deb, lintian-checked; spank_qrmi's backend helper
# spank-qrmi-backend is in spank-plugins, beside the .so, where the plugin looks) and stages, for
# `tests/cluster/cluster.sh up --plugins DIR`, what the clusters use from those packages:
#   DIR/*.deb   the two packages; cluster.sh installs them into a release's rootfs with dpkg -i,
#               and unpacks them for the host's 22.05 (see install_debs in cluster.sh);
#   DIR/*.conf  the packaged plugstack snippets (taken out of the .deb), with log_level=debug so
#               node logs show the plugins at work, and the cluster's own config and state dirs;
#   DIR/bin     the packaged CLIs (frames, qrmi-usage) and the demo renderer, for the cluster's
#               shared directory.
# PLUGINS_FROM=D (e.g. target/slurm-trixie/release, from tests/versions/build-all.sh) packages the
# two plugin .so from D instead: plugins built against another Slurm release's headers, whose
# suite (for the package's PluginDir and Depends) is read from the path (slurm-SUITE/release),
# or given as STAGE_SUITE.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/target/stage}
scratch=${SPANK_CLUSTER_DIR:-$(bash "$repo/tests/cluster/cluster.sh" dir)}
cd "$repo"
cargo build --release --quiet -p spank-qrmi -p qrmi-backend -p qrmi-usage -p spank-frames -p frames -p blackhole-render
rel=${CARGO_TARGET_DIR:-target}/release
from=${PLUGINS_FROM:-$rel}
suite=${STAGE_SUITE:-}
if [[ -z $suite && -n ${PLUGINS_FROM:-} ]]; then
    [[ $PLUGINS_FROM =~ slurm-([a-z0-9.-]+)/release/?$ ]] ||
        { echo "stage-plugins: set STAGE_SUITE for PLUGINS_FROM=$PLUGINS_FROM" >&2; exit 1; }
    suite=${BASH_REMATCH[1]}
fi
rm -rf "$out"
mkdir -p "$out/bin"
mapfile -t debs < <(packaging/deb/build.sh ${suite:+--suite "$suite"} --prebuilt "$from" \
    --bin-dir "$rel" --out "$out")
((${#debs[@]} == 2)) || { echo "stage-plugins: packaging/deb/build.sh made no packages" >&2; exit 1; }
pkgroot=$(mktemp -d /tmp/spank-stage.XXXXXX)
trap 'rm -rf "$pkgroot"' EXIT
for d in "${debs[@]}"; do dpkg-deb -x "$d" "$pkgroot"; done
install -m 0755 "$pkgroot/usr/bin/frames" "$pkgroot/usr/bin/qrmi-usage" "$rel/blackhole-render" "$out/bin/"
for plugin in spank_qrmi spank_frames; do
    # The cluster's own qrmi_config.json (written by the tests) and per-node state dirs.
    sed -E -e 's/^((required|optional)[[:space:]]+[^[:space:]]+\.so.*)$/\1 log_level=debug/' \
        -e "s|/etc/slurm/qrmi_config.json|$scratch/etc/qrmi_config.json state_dir=$scratch/qrmi-state/%n http_timeout=3 http_connect_timeout=2 warden_munge=yes|" \
        "$pkgroot/etc/slurm/plugstack.conf.d/$plugin.conf" >"$out/$plugin.conf"
done
echo "$out"
