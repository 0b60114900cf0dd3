#!/usr/bin/env bash
# packaging/rpm/build.sh: checks packaging/rpm/spank-plugins.spec on Debian (CI): runs rpmbuild
# on artifacts already built (no cargo inside rpmbuild), then verifies each RPM's file list
# (rpm -qlp) and its Slurm requirement. Prints the .rpm paths on stdout.
#
#   packaging/rpm/build.sh [--prebuilt DIR] [--bin-dir DIR] [--slurm-include DIR] [--out DIR]
#
# --prebuilt: libspank_{qrmi,frames}.so (default ${CARGO_TARGET_DIR:-target}/release), --bin-dir:
# frames, qrmi-usage and spank-qrmi-backend (default the same), --slurm-include: the headers they were built against
# (default /usr/include; only slurm_version.h is read). rpmbuild runs with --nodeps: slurm-devel,
# the BuildRequires, is a RHEL package this Debian host's rpm database does not know; and without
# RHEL's post-install scripts (Debian's brp-compress needs bash, /bin/sh is dash), so man pages
# stay uncompressed here: the file lists are compared without .gz (RHEL compresses them).
# Uses /tmp for rpmbuild's tree; output default ${CARGO_TARGET_DIR:-target}/rpms.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
[[ $target == /* ]] || target=$repo/$target
msg() { printf 'build-rpms: %s\n' "$*" >&2; }
die() { msg "ERROR: $*"; exit 1; }

prebuilt=$target/release bin_dir= inc=/usr/include out=$target/rpms
while (($#)); do
    case $1 in
    --prebuilt) prebuilt=${2:?}; shift 2 ;;
    --bin-dir) bin_dir=${2:?}; shift 2 ;;
    --slurm-include) inc=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    *) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0" >&2; exit 2 ;;
    esac
done
command -v rpmbuild >/dev/null || die "rpmbuild missing (apt-get install rpm)"
prebuilt=$(cd "$prebuilt" && pwd)
bin_dir=$(cd "${bin_dir:-$prebuilt}" && pwd)
[[ -f $inc/slurm/slurm_version.h ]] || die "no $inc/slurm/slurm_version.h"
version=${PKG_VERSION:-0~git$(git -C "$repo" log -1 --format=%cd --date=format-local:%Y%m%d%H%M).$(git -C "$repo" rev-parse --short=7 HEAD)}
version=${version//-/.}   # no '-' in an RPM Version

top=$(mktemp -d /tmp/spank-rpmbuild.XXXXXX)
trap 'rm -rf "$top"' EXIT
rpmbuild -bb --nodeps --quiet \
    --define "_topdir $top" \
    --define "_sourcedir $repo" \
    --define "prebuilt $prebuilt" \
    --define "bindir_prebuilt $bin_dir" \
    --define "slurm_include $inc" \
    --define "pkg_version $version" \
    --define "_build_id_links none" \
    --define "__os_install_post %{nil}" \
    "$here/spank-plugins.spec" >&2
mkdir -p "$out"
mapfile -t rpms < <(find "$top/RPMS" -name '*.rpm' | sort)
((${#rpms[@]} == 2)) || die "expected 2 RPMs, got: ${rpms[*]}"
for r in "${rpms[@]}"; do cp "$r" "$out/"; done

# The file lists the spec promises (paths relative to the rpm macros of this host).
libdir=$(rpm --eval '%{_libdir}') mandir=$(rpm --eval '%{_mandir}')
expect_main="/etc/slurm/plugstack.conf.d/spank_frames.conf
/etc/slurm/plugstack.conf.d/spank_qrmi.conf
$libdir/slurm/spank_frames-capture
$libdir/slurm/spank_frames.so
$libdir/slurm/spank_qrmi.so
$libdir/slurm/spank-qrmi-backend
$mandir/man8/spank_frames.8
$mandir/man8/spank_qrmi.8
/var/spool/slurm/spank_qrmi"
expect_tools="/usr/bin/frames
/usr/bin/qrmi-usage
$mandir/man1/frames.1
$mandir/man1/qrmi-usage.1"
for r in "${rpms[@]}"; do
    got=$(rpm -qlp "$r" 2>/dev/null | sed 's/\.gz$//' | sort)
    case ${r##*/} in
    spank-plugins-tools-*) want=$expect_tools ;;
    *) want=$expect_main ;;
    esac
    if [[ $got != "$(sort <<<"$want")" ]]; then
        diff <(sort <<<"$want") <(printf '%s\n' "$got") >&2 || true
        die "${r##*/}: file list differs from the spec's promise (above: < expected, > rpm -qlp)"
    fi
    msg "${r##*/}: $(wc -l <<<"$got") files as expected"
done
main=$(printf '%s\n' "${rpms[@]}" | grep -v -- -tools-)
rpm -qp --requires "$main" 2>/dev/null | grep -q '^slurm(x86-64) < ' || rpm -qp --requires "$main" 2>/dev/null | grep -q '^slurm.* < ' ||
    die "$main does not pin slurm's release: $(rpm -qp --requires "$main" 2>/dev/null | tr '\n' ' ')"
msg "requires: $(rpm -qp --requires "$main" 2>/dev/null | grep '^slurm' | tr '\n' ' ')"
[[ $(rpm -qlvp "$main" 2>/dev/null | awk '$NF == "/var/spool/slurm/spank_qrmi" { print $1 }') == drwx------ ]] ||
    die "state directory is not 0700 in $main"
for r in "${rpms[@]}"; do printf '%s\n' "$out/${r##*/}"; done
