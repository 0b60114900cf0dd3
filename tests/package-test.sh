#!/usr/bin/env bash
# tests/package-test.sh: the Debian packages, installed for real on this (Slurm 22.05) host and
# taken away again. Builds them with packaging/deb/build.sh from the artifacts in
# ${CARGO_TARGET_DIR:-target}/release (built here if missing; lintian errors fail the build),
# then checks, as root:
#   - the 24.11 build (target/slurm-trixie/release, from tests/versions/build-all.sh, if there)
#     is refused here by apt: its Depends pin another Slurm release;
#   - install (apt-get install ./*.deb): files where they belong, conffiles, the state
#     directory root-owned 0700, postinst asks for a slurmd restart;
#   - `sbatch --help` shows --qpu and --frame-dir (Debian's own /etc/slurm/plugstack.conf
#     includes plugstack.conf.d/*.conf; a scratch slurm.conf in /tmp names it, the host's
#     /etc/slurm is not edited), `man -w spank_qrmi spank_frames frames qrmi-usage` finds them;
#   - upgrade to a newer version while a process has the old spank_qrmi.so mapped: the path
#     gets a new inode and the process keeps the old file (dpkg unpacks to NAME.dpkg-new and
#     renames it over NAME), an edited conffile survives;
#   - remove: plugins gone, snippets set aside (sbatch --help works, without our options);
#     reinstall: they are back with the admin's edit; purge: a state directory with accounting
#     records is kept (and purge says so), an empty one goes;
#   - the file lists of /etc, /usr, /var/lib/dpkg/info and /var/spool/slurm before install and
#     after purge are identical.
# Refuses to run if spank-plugins is already installed; on any failure purges what it installed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}
[[ $target == /* ]] || target=$repo/$target
export DEBIAN_FRONTEND=noninteractive

[[ $(id -u) -eq 0 ]] || { echo "package-test: must run as root" >&2; exit 1; }
pass=0
ok() { pass=$((pass + 1)); printf 'package-test: ok: %s\n' "$*"; }
fail() { printf 'package-test: FAIL: %s\n' "$*" >&2; exit 1; }
for p in spank-plugins spank-plugins-tools; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed'; then
        fail "$p is already on this machine ($(dpkg-query -W -f='${Status}' "$p")): not touching it"
    fi
done

scratch=$(mktemp -d /tmp/spank-package-test.XXXXXX)
state=/var/spool/slurm/spank_qrmi
state_before=$(stat -c '%a %U %G' "$state" 2>/dev/null || true)
spool_before=$(stat -c '%a %U %G' /var/spool/slurm 2>/dev/null || true)
holder=
installed=0
cleanup() {
    local rc=$?
    [[ -n $holder ]] && kill "$holder" 2>/dev/null || true
    if ((installed)); then
        dpkg --purge spank-plugins-tools spank-plugins >/dev/null 2>&1 || true
        rm -rf "$state/pkgtest"
    fi
    # What a purge removed that was here before us (the test clusters' runtime dirs).
    if [[ -n $spool_before && ! -d /var/spool/slurm ]]; then
        install -d -m "${spool_before%% *}" /var/spool/slurm
    fi
    if [[ -n $state_before && ! -d $state ]]; then
        install -d -m "${state_before%% *}" "$state"
    fi
    rm -rf "$scratch"
    ((rc == 0)) || echo "package-test: FAILED (rc=$rc), packages purged" >&2
    exit "$rc"
}
trap cleanup EXIT

listing() { # the file lists compared before install and after purge
    find /etc /usr /var/lib/dpkg/info -xdev -printf '%p %M %u %g\n' 2>/dev/null | sort
    # Absent on a machine that never ran a node (postinst makes it, postrm removes it if empty).
    if [[ -d /var/spool/slurm ]]; then
        find /var/spool/slurm -maxdepth 1 -printf '%p %M %u %g\n' 2>/dev/null | sort
    fi
}

t0=$SECONDS
if [[ ! -f $target/release/libspank_qrmi.so || ! -f $target/release/frames || ! -f $target/release/qrmi-usage ||
    ! -f $target/release/spank-qrmi-backend ]]; then
    cargo build --release --quiet -p spank-qrmi -p spank-frames
    cargo build --release --quiet --bin frames --bin qrmi-usage --bin spank-qrmi-backend
fi
# Two versions of the same build, to upgrade from one to the other.
base=0~pkgtest$(date +%s)
mapfile -t v1 < <(PKG_VERSION=$base packaging/deb/build.sh --prebuilt "$target/release" --out "$scratch/v1")
mapfile -t v2 < <(PKG_VERSION=$base.1 packaging/deb/build.sh --prebuilt "$target/release" --out "$scratch/v2" --no-lintian)
((${#v1[@]} == 2 && ${#v2[@]} == 2)) || fail "build.sh did not print two packages"
ok "built and lintian-checked in $((SECONDS - t0)) s: ${v1[*]##*/}"

# The pin: a build for another Slurm release is refused by the package manager.
if [[ -f $target/slurm-trixie/release/libspank_qrmi.so ]]; then
    mapfile -t other < <(PKG_VERSION=$base packaging/deb/build.sh --suite trixie \
        --prebuilt "$target/slurm-trixie/release" --out "$scratch/trixie" --no-lintian)
    if out=$(apt-get install -s "${other[0]}" 2>&1); then
        fail "apt would install the 24.11 build next to Slurm 22.05: $out"
    fi
    grep -q 'slurm-wlm-basic-plugins (>= 24.11~)' <<<"$out" || fail "24.11 build refused for another reason: $out"
    ok "the 24.11 build is refused here: $(grep -m1 'Depends: slurm-wlm-basic-plugins' <<<"$out" | sed 's/^ *//')"
else
    echo "package-test: no target/slurm-trixie/release (tests/versions/build-all.sh trixie): pin check skipped"
fi

listing >"$scratch/before"

# ---- install
installed=1
apt-get install -y -q "${v1[@]}" >"$scratch/install.log" 2>&1 || { cat "$scratch/install.log"; fail "apt-get install"; }
grep -q 'restart slurmd' "$scratch/install.log" || fail "postinst did not ask for a slurmd restart"
plugdir=$(dpkg -L spank-plugins | grep '/spank_qrmi\.so$' | xargs dirname)
for f in "$plugdir/spank_qrmi.so" "$plugdir/spank_frames.so" "$plugdir/spank_frames-capture" "$plugdir/spank-qrmi-backend" /usr/bin/frames /usr/bin/qrmi-usage \
    /etc/slurm/plugstack.conf.d/spank_qrmi.conf /etc/slurm/plugstack.conf.d/spank_frames.conf; do
    [[ -f $f ]] || fail "$f not installed"
done
[[ $(dpkg-query -W -f='${Conffiles}' spank-plugins | awk 'NF {print $1}' | sort | tr '\n' ' ') == \
    "/etc/slurm/plugstack.conf.d/spank_frames.conf /etc/slurm/plugstack.conf.d/spank_qrmi.conf " ]] ||
    fail "conffiles: $(dpkg-query -W -f='${Conffiles}' spank-plugins)"
v=$(dpkg --verify spank-plugins spank-plugins-tools 2>&1) && [[ -z $v ]] || fail "dpkg --verify: $v"
[[ $(stat -c '%U %G' "$state") == "root root" ]] || fail "$state: $(stat -c '%U %G %a' "$state")"
[[ -n $state_before || $(stat -c '%a' "$state") == 700 ]] || fail "$state mode $(stat -c '%a' "$state")"
[[ $(stat -c '%U %a' "$plugdir/spank-qrmi-backend") == "root 755" ]] ||
    fail "$plugdir/spank-qrmi-backend: $(stat -c '%U %G %a' "$plugdir/spank-qrmi-backend")"
# The helper as the plugin runs it: one QPU's status check over its stdin, here against a port
# where nothing listens, so it must answer with a scrubbed "connection refused".
open='{"protocol":1,"resource":{"name":"garnet_q","kind":"IqmServer","type_name":"iqm-server","user_keys":[],"from_job":[],"environment":{"QRMI_IQM_ISA_ENDPOINT":"http://127.0.0.1:1","QRMI_IQM_ISA_TOKEN":"pkgtest-secret"},"is_dynamic":false,"status_check":true,"status_endpoint":null},"http":{"connect_timeout":{"secs":2,"nanos":0},"timeout":{"secs":2,"nanos":0},"max_body":65536,"https_proxy":null,"http_proxy":null,"no_proxy":[],"user_agent":"pkgtest"},"munge":false}'
reply=$(printf '%s\n{"op":"check_accessible"}\n' "$open" | env -i "$plugdir/spank-qrmi-backend") ||
    fail "spank-qrmi-backend failed: $reply"
grep -q '"failed".*connection refused' <<<"$reply" && ! grep -q pkgtest-secret <<<"$reply" ||
    fail "spank-qrmi-backend answered: $reply"
ok "spank-qrmi-backend installed beside the plugins and answers: ${reply:0:100}..."
ok "installed: plugins in $plugdir, CLIs in /usr/bin, 2 conffiles, dpkg --verify clean, $state $(stat -c '%U:%G %a' "$state")${state_before:+ (was there before)}"

# sbatch as an admin's login node runs it: Debian's plugstack.conf includes plugstack.conf.d.
printf 'ClusterName=pkgtest\nSlurmctldHost=localhost\nPlugStackConfig=/etc/slurm/plugstack.conf\n' >"$scratch/slurm.conf"
help=$(SLURM_CONF=$scratch/slurm.conf sbatch --help 2>&1) || fail "sbatch --help: $help"
grep -q -- '--qpu' <<<"$help" || fail "sbatch --help shows no --qpu: $help"
grep -q -- '--frame-dir' <<<"$help" || fail "sbatch --help shows no --frame-dir"
ok "sbatch --help: $(grep -o -- '--qpu[^ ]*' <<<"$help" | head -1) $(grep -o -- '--frame-dir[^ ]*' <<<"$help" | head -1)"
pages=$(man -w spank_qrmi spank_frames frames qrmi-usage) || fail "man -w: $pages"
ok "man -w: $(tr '\n' ' ' <<<"$pages")"
/usr/bin/qrmi-usage --help >/dev/null && /usr/bin/frames --help >/dev/null || fail "CLIs do not run"

# ---- upgrade while the old plugin is mapped (as by a running slurmd)
ino=$(stat -c %i "$plugdir/spank_qrmi.so")
python3 -c 'import mmap, sys, time
f = open(sys.argv[1], "rb"); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
print("mapped", flush=True); time.sleep(120)' "$plugdir/spank_qrmi.so" >"$scratch/holder.out" &
holder=$!
for _ in $(seq 50); do grep -q mapped "$scratch/holder.out" 2>/dev/null && break; sleep 0.1; done
echo '# an admin edit' >>/etc/slurm/plugstack.conf.d/spank_frames.conf
apt-get install -y -q "${v2[@]}" >"$scratch/upgrade.log" 2>&1 || { cat "$scratch/upgrade.log"; fail "upgrade"; }
[[ $(dpkg-query -W -f='${Version}' spank-plugins) == "$base.1"* ]] || fail "not upgraded"
new_ino=$(stat -c %i "$plugdir/spank_qrmi.so")
[[ $new_ino != "$ino" ]] || fail "spank_qrmi.so was rewritten in place (inode $ino kept)"
grep -q "$plugdir/spank_qrmi.so (deleted)" "/proc/$holder/maps" ||
    fail "the mapping of the old file: $(grep spank_qrmi "/proc/$holder/maps" || echo none)"
grep -q '^# an admin edit' /etc/slurm/plugstack.conf.d/spank_frames.conf || fail "upgrade lost the admin's edit"
kill "$holder" && wait "$holder" 2>/dev/null || true
holder=
ok "upgrade: spank_qrmi.so is a new file (inode $ino -> $new_ino), the mapped old one intact (deleted), admin's conffile edit kept"

# ---- remove, purge
apt-get remove -y -q spank-plugins-tools spank-plugins >"$scratch/remove.log" 2>&1 || { cat "$scratch/remove.log"; fail "remove"; }
[[ ! -e $plugdir/spank_qrmi.so && ! -e $plugdir/spank-qrmi-backend && ! -e /usr/bin/frames ]] || fail "files left after remove"
[[ ! -e /etc/slurm/plugstack.conf.d/spank_qrmi.conf && -f /etc/slurm/plugstack.conf.d/spank_qrmi.conf.spank-removed ]] ||
    fail "snippets not set aside on remove: $(ls /etc/slurm/plugstack.conf.d)"
help=$(SLURM_CONF=$scratch/slurm.conf sbatch --help 2>&1) || fail "sbatch --help after remove: $help"
! grep -q -- '--qpu' <<<"$help" || fail "--qpu still offered after remove"
ok "remove: plugins and CLIs gone, snippets set aside ($(ls /etc/slurm/plugstack.conf.d | tr '\n' ' ')), sbatch still works"
# Reinstalled after a remove: the snippets come back as the admin left them.
apt-get install -y -q "${v2[@]}" >"$scratch/reinstall.log" 2>&1 || { cat "$scratch/reinstall.log"; fail "reinstall"; }
grep -q '^# an admin edit' /etc/slurm/plugstack.conf.d/spank_frames.conf ||
    fail "reinstall did not bring back the admin's snippet: $(ls /etc/slurm/plugstack.conf.d)"
[[ -f /etc/slurm/plugstack.conf.d/spank_qrmi.conf && -z $(find /etc/slurm/plugstack.conf.d -name '*.spank-removed') ]] ||
    fail "snippets after reinstall: $(ls /etc/slurm/plugstack.conf.d)"
ok "reinstall after remove: both snippets back, the admin's edit in them"
# A node that has accounted QPU use: purge keeps the records, then (ours) they go.
install -d -m 0700 "$state/pkgtest/node"
echo '{}' >"$state/pkgtest/node/accounting.jsonl"
# (dpkg: apt does not know spank-plugins-tools once removed, it has no conffiles to keep)
dpkg --purge spank-plugins-tools spank-plugins >"$scratch/purge.log" 2>&1 || { cat "$scratch/purge.log"; fail "purge"; }
installed=0
[[ -f $state/pkgtest/node/accounting.jsonl ]] || fail "purge deleted accounting records"
grep -q "kept $state" "$scratch/purge.log" || fail "purge did not say it kept $state"
rm -rf "$state/pkgtest"
ok "purge: $state with accounting records kept and said so"
# Purged again with an empty state dir (install, purge): the directory goes.
apt-get install -y -q "${v1[0]}" >/dev/null 2>&1 && installed=1
dpkg --purge spank-plugins >"$scratch/purge2.log" 2>&1 || { cat "$scratch/purge2.log"; fail "purge"; }
installed=0
[[ ! -e $state ]] || fail "purge left the empty $state"
[[ -z $(find /etc/slurm/plugstack.conf.d -name 'spank_*') ]] || fail "snippets left after purge"
ok "purge leaves no snippet and no empty state directory"
# Put back what was here before us (the test clusters' runtime directory), then compare.
[[ -z $spool_before || -d /var/spool/slurm ]] || install -d -m "${spool_before%% *}" /var/spool/slurm
[[ -z $state_before || -d $state ]] || install -d -m "${state_before%% *}" "$state"
listing >"$scratch/after"
if ! diff -u "$scratch/before" "$scratch/after" >"$scratch/diff"; then
    cat "$scratch/diff" >&2
    fail "files differ before install and after purge"
fi
ok "file lists of /etc /usr /var/lib/dpkg/info /var/spool/slurm identical before install and after purge ($(wc -l <"$scratch/before") entries)"
echo "package-test: $pass passed in $((SECONDS - t0)) s"
