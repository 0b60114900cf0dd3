#!/bin/bash
# build-all.sh [SUITE...]
#
# Build the SPANK plugins against the Slurm headers of several Debian suites
# and check that each plugin carries the right identity for that Slurm:
#
#   bookworm  Slurm 22.05  (the system's /usr/include)
#   trixie    Slurm 24.11
#   sid       Slurm 26.05  (default: all three)
#
# All suites share ONE cargo target dir (${CARGO_TARGET_DIR:-target}), so the dependencies are
# compiled once for every release, and only slurm-sys and what depends on it is rebuilt when the
# headers change. For each suite: fetch-headers.sh SUITE, then, from the repository root,
#   SLURM_INCLUDE_DIR=<dir> cargo build --release -p spank-qrmi -p spank-frames
# (for bookworm, the system's own /usr/include, without SLURM_INCLUDE_DIR: exactly the build
# tests/stage-plugins.sh makes, so it is not rebuilt there), the two plugins copied to
#   ${BUILD_ALL_TARGET_BASE:-target}/slurm-<suite>/release/
# and, for every suite but bookworm (whose headers the main `cargo test --workspace` uses),
#   SLURM_INCLUDE_DIR=<dir> cargo test --workspace
# (dev profile, sharing the main test build's dependencies) so the whole workspace, the C test
# host included, builds and passes against that release's headers (BUILD_ALL_WORKSPACE_TESTS=0
# skips this). The default order builds bookworm last, leaving the host's build in place.
# Then, for each copied lib{spank_qrmi,spank_frames}.so, plugin-info.sh must report
# plugin_version == SLURM_VERSION_NUMBER of that header set's slurm/slurm_version.h and
# plugin_type == spank.
#
# Prints a table on stdout; exits 1 if any fetch, build or check failed.
# Cargo's own output goes to stderr.  Extra cargo arguments can be given in
# BUILD_ALL_CARGO_ARGS (e.g. "--locked" or "--offline").

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
packages=(spank-qrmi spank-frames)

suites=("$@")
[[ ${#suites[@]} -gt 0 ]] || suites=(trixie sid bookworm)
for s in "${suites[@]}"; do
    [[ $s == -h || $s == --help ]] && { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0; }
done

log() { printf '\n=== build-all: %s\n' "$*" >&2; }

rows=()   # "suite|slurm|plugin|plugin_version|expected|result|note"
failed=0
row() { rows+=("$1|$2|$3|$4|$5|$6|${7:-}"); [[ $6 == OK ]] || failed=1; }

# define_value FILE NAME -> the token after `#define NAME`
define_value() {
    awk -v n="$2" '$1 == "#define" && $2 == n { print $3; exit }' "$1"
}

cd "$root" || exit 1
start_all=$SECONDS
for suite in "${suites[@]}"; do
    t0=$SECONDS
    log "$suite: fetching headers"
    if ! inc=$("$here/fetch-headers.sh" "$suite"); then
        row "$suite" "?" "-" "-" "-" FAIL "header fetch failed"
        continue
    fi
    vh=$inc/slurm/slurm_version.h
    raw=$(define_value "$vh" SLURM_VERSION_NUMBER)
    if [[ ! $raw =~ ^(0[xX][0-9a-fA-F]+|[0-9]+)$ ]]; then
        row "$suite" "?" "-" "-" "-" FAIL "no SLURM_VERSION_NUMBER in $vh"
        continue
    fi
    expected=$(printf '0x%06x' $((raw)))
    # slurm_version.h has no version string: decode MAJOR.MINOR.MICRO
    vstr=$(printf '%d.%02d.%d' $((raw >> 16 & 0xff)) $((raw >> 8 & 0xff)) $((raw & 0xff)))
    log "$suite: Slurm ${vstr:-?} ($expected), headers in $inc"

    tdir=${BUILD_ALL_TARGET_BASE:-target}/slurm-$suite
    built=${CARGO_TARGET_DIR:-target}/release
    # The system's headers are found by slurm-sys without the variable; naming them anyway
    # would change the build's fingerprint and make every later plain build start again.
    headers=(env SLURM_INCLUDE_DIR="$inc")
    [[ $inc == /usr/include ]] && headers=(env -u SLURM_INCLUDE_DIR)
    pargs=()
    for p in "${packages[@]}"; do pargs+=(-p "$p"); done
    log "$suite: SLURM_INCLUDE_DIR=$inc cargo build --release ${pargs[*]} ${BUILD_ALL_CARGO_ARGS:-}"
    tb=$SECONDS
    # shellcheck disable=SC2086  # BUILD_ALL_CARGO_ARGS is a word list on purpose
    if ! "${headers[@]}" cargo build --release "${pargs[@]}" ${BUILD_ALL_CARGO_ARGS:-} >&2; then
        row "$suite" "${vstr:-?}" "-" "-" "$expected" FAIL "cargo build failed"
        continue
    fi
    log "$suite: build took $((SECONDS - tb)) s"
    mkdir -p "$tdir/release"
    for p in "${packages[@]}"; do
        so=lib${p//-/_}.so
        # install, not cp: a cluster may have the previous copy mapped.
        [[ -f $built/$so ]] && install -m 0755 "$built/$so" "$tdir/release/$so"
    done

    for p in "${packages[@]}"; do
        so=$tdir/release/lib${p//-/_}.so
        if [[ ! -f $so ]]; then
            row "$suite" "$vstr" "${so##*/}" "-" "$expected" FAIL "not built"
            continue
        fi
        info=$("$here/plugin-info.sh" "$so" 2>&1)
        pi_rc=$?
        printf '%s\n' "$info" | sed "s|^|  ${so##*/}: |" >&2
        got=$(sed -n 's/^plugin_version=//p' <<<"$info")
        type=$(sed -n 's/^plugin_type=//p' <<<"$info")
        name=$(sed -n 's/^plugin_name=//p' <<<"$info")
        notes=()
        [[ $got == "$expected" ]] || notes+=("version ${got:-missing} != $expected")
        [[ $type == spank ]] || notes+=("plugin_type '${type}' != spank")
        [[ -n $name ]] || notes+=("no plugin_name")
        ((pi_rc == 0)) || notes+=("plugin-info.sh problems (see above)")
        if ((${#notes[@]} == 0)); then
            row "$suite" "$vstr" "${so##*/}" "$got" "$expected" OK "name: $name"
        else
            row "$suite" "$vstr" "${so##*/}" "${got:--}" "$expected" FAIL "$(IFS=';'; echo "${notes[*]}")"
        fi
    done
    if [[ $suite != bookworm && ${BUILD_ALL_WORKSPACE_TESTS:-1} != 0 ]]; then
        log "$suite: SLURM_INCLUDE_DIR=$inc cargo test --workspace"
        tt=$SECONDS
        # shellcheck disable=SC2086
        if "${headers[@]}" cargo test --workspace ${BUILD_ALL_CARGO_ARGS:-} >&2; then
            row "$suite" "$vstr" "workspace tests" "-" "-" OK "cargo test --workspace: $((SECONDS - tt)) s"
        else
            row "$suite" "$vstr" "workspace tests" "-" "-" FAIL "cargo test --workspace failed"
        fi
    fi
    log "$suite: done in $((SECONDS - t0)) s"
done

printf '\n%-9s %-9s %-20s %-15s %-10s %-6s %s\n' \
    suite slurm plugin plugin_version expected result note
for r in "${rows[@]}"; do
    IFS='|' read -r s v p g e res n <<<"$r"
    printf '%-9s %-9s %-20s %-15s %-10s %-6s %s\n' "$s" "$v" "$p" "$g" "$e" "$res" "$n"
done
printf '\n%s in %d s\n' "$([[ $failed == 0 ]] && echo "ALL OK" || echo "FAILED")" \
    $((SECONDS - start_all))
exit $failed
