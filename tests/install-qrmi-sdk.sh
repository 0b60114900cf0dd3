#!/usr/bin/env bash
# Installs the real QRMI SDK (`qrmi` from PyPI, the job-side library spank_qrmi's environment
# is for) in a venv made with Debian's python3: the SDK tests (tests/integration/tests/
# qrmi_sdk.rs) run user jobs with it on the test cluster, whose nodes and test users share
# this machine's filesystem. Prints the venv's python (its path as the jobs see it). Root only.
#   install-qrmi-sdk.sh            on the host, once per machine (Slurm 22.05 jobs).
#   install-qrmi-sdk.sh --root R   inside the release rootfs R (cluster.sh's $SPANK_ROOT, whose
#                                  jobs run chrooted): R has python3 + python3-venv (rootfs.sh);
#                                  the wheels come from a host cache, so no network in R.
# QRMI_SDK_VERSION (default 0.26.4) and QRMI_SDK_DIR (default /var/cache/spank-qrmi-sdk) choose.
set -euo pipefail
version=${QRMI_SDK_VERSION:-0.26.4}
base=${QRMI_SDK_DIR:-/var/cache/spank-qrmi-sdk}
root=
if [[ ${1:-} == --root ]]; then root=${2:?--root needs a directory}; fi
venv=$base/qrmi-$version
wheels=$base/wheels-$version
ensure_host_venv_tool() {
    dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed" || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    }
}
if [[ -z $root ]]; then
    if [ ! -e "$venv/.installed" ]; then
        ensure_host_venv_tool
        rm -rf "$venv"
        install -d -m 0755 "$base"
        # Debian's interpreter (not one from a user's PATH, e.g. pyenv under /root): the venv
        # links to it, and the test users must be able to run it.
        /usr/bin/python3 -m venv "$venv" >&2
        # A binary wheel only (cp311-abi3-manylinux_2_28): never a source build of the Rust crate.
        "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: "qrmi==$version" >&2
        "$venv/bin/python" -c 'import qrmi; qrmi.QRMIService' >&2
        chmod -R a+rX "$venv"
        touch "$venv/.installed"
    fi
    echo "$venv/bin/python"
    exit 0
fi
# In a rootfs: its own python (trixie 3.13, sid newer; the abi3 wheel fits both), the wheels
# downloaded once on the host (all pure python but qrmi's abi3 one).
[[ -x $root/usr/bin/python3 ]] || { echo "install-qrmi-sdk.sh: $root has no /usr/bin/python3 (rootfs.sh's include list)" >&2; exit 1; }
if [ ! -e "$wheels/.complete" ]; then
    ensure_host_venv_tool
    rm -rf "$wheels"
    install -d -m 0755 "$wheels"
    /usr/bin/python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$wheels" "qrmi==$version" >&2
    touch "$wheels/.complete"
fi
if [ ! -e "$root$venv/.installed" ]; then
    rm -rf "$root$venv" "$root/tmp/qrmi-wheels"
    install -d -m 0755 "$root$base" "$root/tmp/qrmi-wheels"
    cp "$wheels"/*.whl "$root/tmp/qrmi-wheels/"
    chroot "$root" /usr/bin/python3 -m venv "$venv" >&2
    chroot "$root" "$venv/bin/pip" install --quiet --disable-pip-version-check --no-index \
        --find-links /tmp/qrmi-wheels "qrmi==$version" >&2
    chroot "$root" "$venv/bin/python" -c 'import qrmi; qrmi.QRMIService' >&2
    rm -rf "$root/tmp/qrmi-wheels"
    chmod -R a+rX "$root$venv"
    touch "$root$venv/.installed"
fi
echo "$venv/bin/python"
