#!/usr/bin/env bash
# packaging/deb/build.sh: Debian packages of the SPANK plugins for ONE Slurm release, the one
# whose headers it is given; prints the paths of the two .deb files on stdout (progress on stderr).
#
#   packaging/deb/build.sh [--suite SUITE | --slurm-include DIR] [--plugin-dir DIR]
#                          [--prebuilt DIR] [--bin-dir DIR] [--out DIR] [--no-lintian]
#
#   spank-plugins        spank_qrmi.so and spank_frames.so in the distribution's Slurm PluginDir,
#                        with their helpers beside them: spank-qrmi-backend (spank_qrmi runs it,
#                        as root, only to acquire or release a QPU) and spank_frames-capture (the
#                        result-capture helper), the plugstack snippets as conffiles in /etc/slurm/plugstack.conf.d/, the
#                        man pages spank_qrmi(8) and spank_frames(8), and (postinst) the state
#                        directory /var/spool/slurm/spank_qrmi (root, 0700). For every node.
#   spank-plugins-tools  frames and qrmi-usage in /usr/bin with their man pages; depends on
#                        spank-plugins of the same version. For login nodes.
#
# Headers: --suite SUITE (tests/versions/fetch-headers.sh SUITE: bookworm is the system's,
# trixie / sid are unpacked from Debian), --slurm-include DIR, else $SLURM_INCLUDE_DIR, else
# /usr/include (slurm-sys's rule). Slurm's major.minor comes from their slurm_version.h; the
# package Depends on slurm-wlm-basic-plugins (>= X.Y~, << X.(Y+1)~): the package slurmd and
# slurm-client both depend on with "=", so neither can move to another release under it.
# The PluginDir is read from that distribution's slurm-wlm-basic-plugins (where its
# libslurmfull.so lies: `dpkg -L` for installed headers, the suite's .deb for fetched ones);
# for headers of any other origin it must be given with --plugin-dir (never guessed).
#
# Built from artifacts, not from crate metadata: unless --prebuilt DIR names a directory with
# libspank_qrmi.so and libspank_frames.so (e.g. target/slurm-trixie/release from
# tests/versions/build-all.sh), it runs
#   SLURM_INCLUDE_DIR=DIR cargo build --release -p spank-qrmi -p spank-frames
#   cargo build --release --bin frames --bin qrmi-usage --bin spank-qrmi-backend
# and takes the files from ${CARGO_TARGET_DIR:-target}/release (--bin-dir for the CLIs and the
# helper, which do not depend on the Slurm release). Each
# plugin's plugin_version must equal the headers' SLURM_VERSION_NUMBER, or nothing is packaged.
# Package version: ${PKG_VERSION:-0~git<commit YYYYmmddHHMM>.<hash>}-1+slurmX.Y (a rebuild for a newer
# Slurm sorts higher). Packages are assembled with dpkg-deb --root-owner-group from generated
# control files and checked with lintian (errors fail the build). Output: --out, default
# ${CARGO_TARGET_DIR:-target}/debs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
[[ $target == /* ]] || target=$repo/$target

msg() { printf 'build-debs: %s\n' "$*" >&2; }
die() { msg "ERROR: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0" >&2; exit 2; }

suite= inc=${SLURM_INCLUDE_DIR:-} plugin_dir= prebuilt= bin_dir= out= lintian=1
while (($#)); do
    case $1 in
    --suite) suite=${2:?--suite needs a name}; shift 2 ;;
    --slurm-include) inc=${2:?--slurm-include needs a directory}; shift 2 ;;
    --plugin-dir) plugin_dir=${2:?--plugin-dir needs a directory}; shift 2 ;;
    --prebuilt) prebuilt=${2:?--prebuilt needs a directory}; shift 2 ;;
    --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --no-lintian) lintian=0; shift ;;
    -h | --help) usage ;;
    *) die "unknown argument '$1' (--help)" ;;
    esac
done
for t in dpkg-deb dpkg-shlibdeps strip gzip; do
    command -v "$t" >/dev/null || die "$t missing (apt-get install dpkg-dev binutils)"
done

# ---- the Slurm release: headers, version, PluginDir
fetch=$repo/tests/versions/fetch-headers.sh
if [[ -n $suite ]]; then
    inc=$("$fetch" "$suite")
elif [[ -z $inc ]]; then
    inc=/usr/include
fi
inc=$(cd "$inc" && pwd)
vh=$inc/slurm/slurm_version.h
[[ -f $inc/slurm/spank.h && -f $vh ]] || die "$inc has no slurm/spank.h and slurm/slurm_version.h"
raw=$(awk '$1 == "#define" && $2 == "SLURM_VERSION_NUMBER" { print $3; exit }' "$vh")
[[ $raw =~ ^(0[xX][0-9a-fA-F]+|[0-9]+)$ ]] || die "no SLURM_VERSION_NUMBER in $vh"
major=$((raw >> 16 & 0xff)) minor=$((raw >> 8 & 0xff))
release=$(printf '%d.%02d' "$major" "$minor")
next=$(printf '%d.%02d' "$major" $((minor + 1)))
want_version=$(printf '0x%06x' $((raw)))
slurm_pkg=slurm-wlm-basic-plugins

if [[ -z $plugin_dir ]]; then
    owner=$(dpkg-query -S "$inc/slurm/spank.h" 2>/dev/null | cut -d: -f1 || true)
    cache=${SLURM_HEADERS_CACHE:-/var/cache/spank-slurm-headers}
    if [[ -n $owner ]]; then
        # Headers of an installed package: that system's own Slurm.
        have=$(dpkg-query -W -f='${Version}' "$slurm_pkg" 2>/dev/null) ||
            die "headers from $owner, but $slurm_pkg is not installed: give --plugin-dir"
        [[ $have == "$release".* ]] || die "$slurm_pkg $have installed, headers are $release: give --plugin-dir"
        plugin_dir=$("$fetch" --plugin-dir bookworm)
    elif [[ $inc == "$cache"/*/root/usr/include ]]; then
        s=${inc#"$cache"/}
        plugin_dir=$("$fetch" --plugin-dir "${s%%/*}")
    else
        die "headers in $inc belong to no known distribution package: give --plugin-dir (scontrol show config | grep PluginDir)"
    fi
fi
[[ $plugin_dir == /* ]] || die "--plugin-dir must be absolute (got '$plugin_dir')"
msg "Slurm $release ($want_version), headers $inc, PluginDir $plugin_dir"

# ---- the artifacts
if [[ -z $prebuilt ]]; then
    (
        cd "$repo"
        headers=(env SLURM_INCLUDE_DIR="$inc")
        # The system's headers are found without the variable (build-all.sh: same fingerprint).
        [[ $inc == /usr/include ]] && headers=(env -u SLURM_INCLUDE_DIR)
        msg "cargo build --release -p spank-qrmi -p spank-frames (headers $inc)"
        "${headers[@]}" cargo build --release --quiet -p spank-qrmi -p spank-frames >&2
        msg "cargo build --release --bin frames --bin qrmi-usage --bin spank-qrmi-backend"
        "${headers[@]}" cargo build --release --quiet --bin frames --bin qrmi-usage --bin spank-qrmi-backend >&2
    )
    prebuilt=$target/release
fi
bin_dir=${bin_dir:-$target/release}
# spank_frames' capture helper builds with the plugin (no Slurm headers in it): from --prebuilt,
# else from --bin-dir.
capture=$prebuilt/spank_frames-capture
[[ -f $capture ]] || capture=$bin_dir/spank_frames-capture
for f in "$prebuilt/libspank_qrmi.so" "$prebuilt/libspank_frames.so" "$capture" "$bin_dir/frames" "$bin_dir/qrmi-usage" "$bin_dir/spank-qrmi-backend"; do
    [[ -f $f ]] || die "missing artifact $f"
done
info=$repo/tests/versions/plugin-info.sh
for p in spank_qrmi spank_frames; do
    got=$("$info" "$prebuilt/lib$p.so" | sed -n 's/^plugin_version=//p')
    [[ $got == "$want_version" ]] ||
        die "$prebuilt/lib$p.so has plugin_version $got, the headers say $want_version: built for another Slurm"
done

# ---- version, maintainer
if [[ -z ${PKG_VERSION:-} ]]; then
    PKG_VERSION=0~git$(git -C "$repo" log -1 --format=%cd --date=format-local:%Y%m%d%H%M 2>/dev/null).$(git -C "$repo" rev-parse --short=7 HEAD 2>/dev/null) ||
        die "not a git checkout: set PKG_VERSION"
fi
[[ $PKG_VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "bad PKG_VERSION '$PKG_VERSION'"
version=$PKG_VERSION-1+slurm$release
maintainer=${PKG_MAINTAINER:-$(git -C "$repo" log -1 --format='%an <%ae>' 2>/dev/null || true)}
[[ $maintainer =~ ^[^\<]+\ \<[^@\>]+@[^\>]+\>$ ]] || die "set PKG_MAINTAINER='Name <address>'"
arch=$(dpkg --print-architecture)
date=$(git -C "$repo" log -1 --format=%cD 2>/dev/null || date -R)
year=$(git -C "$repo" log -1 --format=%cd --date=format:%Y 2>/dev/null || date +%Y)
commit=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
out=${out:-$target/debs}
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d /tmp/spank-debs.XXXXXX)
trap 'rm -rf "$work"' EXIT

# doc_files PKG ROOT: copyright and changelog.Debian.gz of PKG
doc_files() {
    local pkg=$1 root=$2 doc=$2/usr/share/doc/$1
    install -d -m 0755 "$doc"
    cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: spank-plugins
Comment: Slurm SPANK plugins in Rust (spank-qrmi, spank-frames), built from commit $commit.

Files: *
Copyright: $year the spank-plugins authors
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
    printf '%s (%s) unstable; urgency=medium\n\n  * Built from commit %s for Slurm %s\n    (headers: %s).\n\n -- %s  %s\n' \
        "$pkg" "$version" "$commit" "$release" "$inc" "$maintainer" "$date" |
        gzip -9n >"$doc/changelog.Debian.gz"
    chmod 0644 "$doc"/*
}

man_page() { # SRC ROOT SECTION
    install -d -m 0755 "$2/usr/share/man/man$3"
    gzip -9n <"$1" >"$2/usr/share/man/man$3/$(basename "$1").gz"
    chmod 0644 "$2/usr/share/man/man$3/$(basename "$1").gz"
}

# shlibs FILE...: the Depends of the ELF files (dpkg-shlibdeps wants a debian/control beside it)
shlibs() {
    local d=$work/shlibs
    mkdir -p "$d/debian"
    printf 'Source: spank-plugins\n\nPackage: x\nArchitecture: any\n' >"$d/debian/control"
    (cd "$d" && dpkg-shlibdeps -O "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
}

# ---- spank-plugins
root=$work/spank-plugins
install -d -m 0755 "$root$plugin_dir" "$root/etc/slurm/plugstack.conf.d" "$root/DEBIAN"
for p in spank_qrmi spank_frames; do
    install -m 0644 "$prebuilt/lib$p.so" "$root$plugin_dir/$p.so"
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root$plugin_dir/$p.so"
    install -m 0644 "$repo/plugstack.conf.d/$p.conf" "$root/etc/slurm/plugstack.conf.d/$p.conf"
    echo "/etc/slurm/plugstack.conf.d/$p.conf" >>"$root/DEBIAN/conffiles"
done
# Found by spank_frames.so next to its own (real) path: spank_frames(8), RESULT CAPTURE.
install -m 0755 "$capture" "$root$plugin_dir/spank_frames-capture"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root$plugin_dir/spank_frames-capture"
# spank_qrmi finds its backend helper next to itself (no plugstack argument needed).
install -m 0755 "$bin_dir/spank-qrmi-backend" "$root$plugin_dir/spank-qrmi-backend"
strip --remove-section=.comment --remove-section=.note "$root$plugin_dir/spank-qrmi-backend"
man_page "$repo/spank-qrmi/spank_qrmi.8" "$root" 8
man_page "$repo/spank-frames/spank_frames.8" "$root" 8
doc_files spank-plugins "$root"
[[ -f $repo/spank-qrmi/CONFIG.md ]] && install -m 0644 "$repo/spank-qrmi/CONFIG.md" "$root/usr/share/doc/spank-plugins/CONFIG.md"
deps=$(shlibs "$root$plugin_dir/spank_qrmi.so" "$root$plugin_dir/spank_frames.so" "$root$plugin_dir/spank_frames-capture" "$root$plugin_dir/spank-qrmi-backend")
cat >"$root/DEBIAN/control" <<EOF
Package: spank-plugins
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: ${deps:+$deps, }$slurm_pkg (>= $release~), $slurm_pkg (<< $next~)
Section: admin
Priority: optional
Description: Slurm SPANK plugins for QPU access and job-array frames (Slurm $release)
 spank_qrmi.so gives jobs --qpu=NAME: quantum processors from the site's
 qrmi_config.json, acquired before the first task and released when the job
 ends (a drop-in for the Qiskit community's spank_qrmi). spank_frames.so gives
 job arrays --frame-dir=DIR: per-task frame paths, a record of every task's
 end and a merged manifest.
 .
 Built for Slurm $release only: Slurm refuses plugins of another release, so
 this package depends on that release's slurm-wlm-basic-plugins. The
 plugstack snippets in /etc/slurm/plugstack.conf.d/ are active wherever
 plugstack.conf includes that directory (Debian's does); restart slurmd
 after installing or upgrading.
EOF
sed -e "s|@PLUGIN_DIR@|$plugin_dir|g" -e "s|@RELEASE@|$release|g" "$here/postinst" >"$root/DEBIAN/postinst"
cp "$here/postrm" "$root/DEBIAN/postrm"
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"

# ---- spank-plugins-tools
troot=$work/spank-plugins-tools
install -d -m 0755 "$troot/usr/bin" "$troot/DEBIAN"
for b in frames qrmi-usage; do
    install -m 0755 "$bin_dir/$b" "$troot/usr/bin/$b"
    strip --remove-section=.comment --remove-section=.note "$troot/usr/bin/$b"
done
man_page "$repo/frames/frames.1" "$troot" 1
man_page "$here/../man/qrmi-usage.1" "$troot" 1
doc_files spank-plugins-tools "$troot"
tdeps=$(shlibs "$troot/usr/bin/frames" "$troot/usr/bin/qrmi-usage")
cat >"$troot/DEBIAN/control" <<EOF
Package: spank-plugins-tools
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$troot" | cut -f1)
Depends: ${tdeps:+$tdeps, }spank-plugins (= $version)
Recommends: ffmpeg
Section: admin
Priority: optional
Description: command-line tools for the spank_frames and spank_qrmi Slurm plugins
 frames shows which frames of a --frame-dir job array are missing, resubmits
 only those and assembles the video (ffmpeg). qrmi-usage reports QPU use per
 user and per QPU from spank_qrmi's accounting logs. For login nodes; they
 need the plugins too (sbatch loads them), hence the dependency.
EOF
chmod 0644 "$troot/DEBIAN/control"

debs=()
for r in "$root" "$troot"; do
    pkg=$(basename "$r")
    # What dh_md5sums makes: dpkg --verify checks installed files against it (conffiles aside).
    (cd "$r" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' |
        sort -z | xargs -0 md5sum >DEBIAN/md5sums)
    chmod 0644 "$r/DEBIAN/md5sums"
    deb=$out/${pkg}_${version}_$arch.deb
    dpkg-deb --root-owner-group -Zxz --build "$r" "$deb" >&2
    debs+=("$deb")
done
if ((lintian)); then
    command -v lintian >/dev/null || die "lintian missing (apt-get install lintian), or --no-lintian"
    msg "lintian ${debs[*]##*/}"
    # Errors fail; warnings and info are shown (the README lists the expected ones).
    lintian --fail-on error "${debs[@]}" >&2 ||
        die "lintian reported errors"
fi
printf '%s\n' "${debs[@]}"
