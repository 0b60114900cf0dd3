#!/usr/bin/env bash
# Installs the real QRMI SDK (`qrmi` from PyPI, the job-side library spank_qrmi's environment
# is for) in a venv made with Debian's python3, once per machine: the SDK tests
# (tests/integration/tests/qrmi_sdk.rs) run user jobs with it on the test cluster, whose nodes
# and test users share this machine's filesystem. Prints the venv's python. Root only.
# QRMI_SDK_VERSION (default 0.26.4) and QRMI_SDK_DIR (default /var/cache/spank-qrmi-sdk) choose.
set -euo pipefail
version=${QRMI_SDK_VERSION:-0.26.4}
base=${QRMI_SDK_DIR:-/var/cache/spank-qrmi-sdk}
venv=$base/qrmi-$version
if [ ! -e "$venv/.installed" ]; then
    dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed" || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    }
    rm -rf "$venv"
    install -d -m 0755 "$base"
    # Debian's interpreter (not one from a user's PATH, e.g. pyenv under /root): the venv links
    # to it, and the test users must be able to run it.
    /usr/bin/python3 -m venv "$venv" >&2
    # A binary wheel only (cp311-abi3-manylinux_2_28): never a source build of the Rust crate.
    "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: "qrmi==$version" >&2
    "$venv/bin/python" -c 'import qrmi; qrmi.QRMIService' >&2
    chmod -R a+rX "$venv"
    touch "$venv/.installed"
fi
echo "$venv/bin/python"
