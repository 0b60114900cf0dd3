#!/bin/bash
# fetch-headers.sh SUITE...
#
# Print, one line per SUITE (in argument order), the include directory that
# contains slurm/spank.h for the Slurm version Debian ships in that suite:
#
#   bookworm  -> the system's own /usr/include (libslurm-dev must be installed)
#   trixie    -> Slurm 24.11, sid -> Slurm 26.05, any other Debian suite name works too
#
# For a non-system suite the libslurm-dev .deb of that suite is downloaded with
# apt, using a PRIVATE sources list, lists directory, cache directory and apt
# config; the system's apt state (/etc/apt, /var/lib/apt, /var/cache/apt) is
# only read, never written.  The package is unpacked with `dpkg -x` into
#   ${SLURM_HEADERS_CACHE:-/var/cache/spank-slurm-headers}/<suite>/root
# and the printed directory is <that>/usr/include.
#
# A cached unpack is reused as is.  With SLURM_HEADERS_REFRESH=1 the suite's
# index is re-downloaded and the package is fetched again only if its version
# changed.
#
# The archive URI is taken from the machine's apt configuration
# (/etc/apt/sources.list.d/*.sources `URIs:` or one-line `deb` entries); set
# SLURM_HEADERS_MIRROR=URI to override.  No host is hard-coded here.
#
# Release files are verified with the system keyring
# (${SLURM_HEADERS_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}) via
# Signed-By.  bookworm's debian-archive-keyring (2023.3+deb12u2) already holds
# the trixie archive keys, which is what trixie and sid are signed with.
#
# fetch-headers.sh --plugin-dir SUITE
#
# Print the Slurm PluginDir of that suite's own packages instead: the directory holding
# libslurmfull.so in slurm-wlm-basic-plugins (the package slurmd and slurm-client depend on,
# of the same version as the cached libslurm-dev), read from `dpkg -L` for bookworm (the
# system's) and from the suite's .deb (`dpkg-deb -c`, downloaded with the same private apt
# state into a temporary directory) otherwise; remembered as <suite>/plugindir. Used by
# packaging/deb/build.sh, so a package puts the plugins where that distribution's Slurm looks.
#
# Progress goes to stderr; stdout carries only the include directories.

set -euo pipefail

CACHE=${SLURM_HEADERS_CACHE:-/var/cache/spank-slurm-headers}
KEYRING=${SLURM_HEADERS_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
PKG=libslurm-dev

log() { printf 'fetch-headers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

# The first plain Debian archive URI configured on this machine (a stanza
# or line whose suite is not a -security/-updates/-backports one).
system_mirror() {
    local f uri
    shopt -s nullglob
    for f in /etc/apt/sources.list.d/*.sources; do
        uri=$(awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && uris != "" && base) { print uris; found = 1; exit }
                types = ""; uris = ""; base = 0
            }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]*#/ { next }
            tolower($1) == "types:" { types = ""; for (i = 2; i <= NF; i++) types = types " " $i; sub(/^ /, "", types); next }
            tolower($1) == "uris:"  { uris = $2; next }
            tolower($1) == "enabled:" && tolower($2) == "no" { types = ""; next }
            tolower($1) == "suites:" {
                for (i = 2; i <= NF; i++) if ($i !~ /[-\/](security|updates|backports|proposed-updates)$/) base = 1
                next
            }
            END { if (!found) flush() }
        ' "$f")
        if [[ -n $uri ]]; then printf '%s\n' "$uri"; return 0; fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        uri=$(awk '
            $1 != "deb" { next }
            { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } }
            $(i + 1) !~ /[-\/](security|updates|backports|proposed-updates)$/ { print $i; exit }
        ' "$f")
        if [[ -n $uri ]]; then printf '%s\n' "$uri"; return 0; fi
    done
    return 1
}

# Find the include dir (the parent of slurm/spank.h) under an unpacked root.
include_dir_of() {
    local spank
    spank=$(find "$1" -path '*/slurm/spank.h' -print -quit 2>/dev/null || true)
    [[ -n $spank ]] || return 1
    dirname "$(dirname "$spank")"
}

# apt-get/apt-cache (TOOL) with everything apt writes redirected into $dir.
private_apt() {
    local tool=$1 dir=$2; shift 2
    "$tool" -q \
        -c "$dir/apt.conf" \
        -o Dir::Etc::SourceList="$dir/apt.sources" \
        -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::Etc::Preferences=/dev/null \
        -o Dir::Etc::PreferencesParts=/dev/null \
        -o Dir::State::Lists="$dir/lists" \
        -o Dir::State::extended_states="$dir/extended_states" \
        -o Dir::Cache="$dir/cache" \
        -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
        -o Dir::Cache::Archives="$dir/cache/archives" \
        "$@"
}

apt_setup() {
    local suite=$1 dir=$2 mirror=$3
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/deb"
    # Let apt's download sandbox user write there (it would otherwise fall back
    # to downloading unsandboxed as root, with a warning).
    if id _apt >/dev/null 2>&1; then
        chown _apt "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/deb"
    fi
    : >"$dir/extended_states"
    cat >"$dir/apt.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite
Components: main
Architectures: $(dpkg --print-architecture)
Signed-By: $KEYRING
EOF
    # Read after the system's apt.conf.d (so proxies and the like still
    # apply) and drop what would act on the system's state: the update hooks
    # (docker-clean's `rm /var/cache/apt/*.bin`, appstream, packagekit) and
    # the extra AppStream indices.
    cat >"$dir/apt.conf" <<'EOF'
#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Pre-Invoke;
#clear DPkg::Post-Invoke;
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Acquire::Languages "none";
EOF
}

candidate_version() {
    local dir=$1
    # The candidate (what `apt-get download $PKG` would fetch), not every version.
    private_apt apt-cache "$dir" -o APT::Cache::AllVersions=0 show "$PKG" 2>/dev/null \
        | awk '/^Version:/ && !v { v = $2 } END { print v }' || true
}

fetch_suite() {
    local suite=$1
    local base=$CACHE/$suite
    local root=$base/root apt=$base/apt
    local inc have="" want deb mirror

    if [[ -f $base/version ]] && inc=$(include_dir_of "$root"); then
        have=$(<"$base/version")
        if [[ ${SLURM_HEADERS_REFRESH:-0} != 1 ]]; then
            log "$suite: cached $PKG $have in $root"
            printf '%s\n' "$inc"
            return 0
        fi
    fi

    if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
        die "apt-get and dpkg are needed to fetch $suite headers"
    fi
    mirror=${SLURM_HEADERS_MIRROR:-$(system_mirror)} \
        || die "no Debian archive URI found in /etc/apt; set SLURM_HEADERS_MIRROR"
    [[ -r $KEYRING ]] || die "keyring $KEYRING not readable (set SLURM_HEADERS_KEYRING)"

    apt_setup "$suite" "$apt" "$mirror"
    log "$suite: apt-get update from $mirror (private lists in $apt)"
    if ! private_apt apt-get "$apt" update >"$apt/update.log" 2>&1; then
        cat "$apt/update.log" >&2
        die "$suite: apt-get update failed"
    fi
    # apt-get update exits 0 on some fetch errors; make those fatal too.
    if grep -E '^(E:|W: (Failed|GPG|.*(not signed|NO_PUBKEY)))' "$apt/update.log" >&2; then
        die "$suite: apt-get update reported errors (log: $apt/update.log)"
    fi
    want=$(candidate_version "$apt")
    [[ -n $want ]] || die "$suite: no $PKG in $suite/main"

    if [[ -n $have && $have == "$want" ]]; then
        log "$suite: $PKG $have unchanged, reusing $root"
        printf '%s\n' "$inc"
        return 0
    fi

    rm -f "$apt/deb/"*.deb
    log "$suite: downloading $PKG $want"
    (cd "$apt/deb" && private_apt apt-get "$apt" download "$PKG=$want") >&2 \
        || die "$suite: apt-get download $PKG=$want failed"
    local debs=("$apt/deb/"*.deb)
    deb=${debs[0]}
    [[ -f $deb ]] || die "$suite: no .deb downloaded"

    # Unpack next to the old tree, then swap, so a failure leaves the cache usable.
    rm -rf "$root.new"
    mkdir -p "$root.new"
    dpkg -x "$deb" "$root.new"
    include_dir_of "$root.new" >/dev/null || die "$suite: $deb has no slurm/spank.h"
    rm -rf "$root"
    mv "$root.new" "$root"
    printf '%s\n' "$want" >"$base/version"
    inc=$(include_dir_of "$root")
    log "$suite: $PKG $want unpacked, headers in $inc"
    printf '%s\n' "$inc"
}

system_headers() {
    local inc=/usr/include
    [[ -f $inc/slurm/spank.h ]] \
        || die "bookworm: $inc/slurm/spank.h missing (apt-get install libslurm-dev)"
    log "bookworm: system headers in $inc"
    printf '%s\n' "$inc"
}

# The PluginDir of SUITE's slurm-wlm-basic-plugins (see the header).
plugin_dir() {
    local suite=$1 f base ver line tmp d debs
    if [[ $suite == bookworm || $suite == system ]]; then
        # (grep reads to the end: -m1 would race dpkg into SIGPIPE under pipefail)
        f=$(dpkg -L slurm-wlm-basic-plugins 2>/dev/null | grep '/libslurmfull\.so$' | head -n1) \
            || die "bookworm: slurm-wlm-basic-plugins is not installed (no libslurmfull.so)"
        dirname "$f"
        return 0
    fi
    base=$CACHE/$suite
    fetch_suite "$suite" >/dev/null
    ver=$(<"$base/version")
    if [[ -f $base/plugindir ]]; then
        line=$(<"$base/plugindir")
        [[ ${line%% *} == "$ver" ]] && { printf '%s\n' "${line#* }"; return 0; }
    fi
    tmp=$(mktemp -d)
    # apt downloads as _apt where it can write.
    chown _apt "$tmp" 2>/dev/null || true
    log "$suite: reading PluginDir from slurm-wlm-basic-plugins $ver"
    if ! (cd "$tmp" && private_apt apt-get "$base/apt" download "slurm-wlm-basic-plugins=$ver") >&2; then
        rm -rf "$tmp"
        die "$suite: apt-get download slurm-wlm-basic-plugins=$ver failed"
    fi
    debs=("$tmp"/*.deb)
    # (awk reads to the end: an early exit would kill dpkg-deb's tar with SIGPIPE)
    d=$(dpkg-deb -c "${debs[0]}" | awk '$NF ~ /\/libslurmfull\.so$/ && !d { d = $NF } END { print d }')
    rm -rf "$tmp"
    [[ -n $d ]] || die "$suite: slurm-wlm-basic-plugins $ver has no libslurmfull.so"
    d=${d#.}
    d=${d%/libslurmfull.so}
    printf '%s %s\n' "$ver" "$d" >"$base/plugindir"
    printf '%s\n' "$d"
}

[[ $# -ge 1 ]] || usage
if [[ $1 == --plugin-dir ]]; then
    [[ $# -eq 2 && $2 != *[!a-z0-9.-]* ]] || usage
    plugin_dir "$2"
    exit 0
fi
for suite in "$@"; do
    case $suite in
        -h | --help) usage ;;
        bookworm | system) system_headers ;;
        *[!a-z0-9.-]* | -*) die "bad suite name: $suite" ;;
        *) fetch_suite "$suite" ;;
    esac
done
