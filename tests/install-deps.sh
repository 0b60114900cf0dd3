#!/usr/bin/env bash
# Installs the Debian packages the project needs (Slurm 22.05 + headers, munge, libclang for
# bindgen, a C compiler, iproute2 for the test cluster's namespaces, the packaging tools; the list is
# tests/packages.sh's "host" column). Idempotent; root only.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# shellcheck source=packages.sh
source "$(dirname "$0")/packages.sh"
mapfile -t packages < <(packages_for host)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || {
    echo "cargo not found: install a Rust toolchain (rustup, stable >= 1.95) first" >&2
    exit 1
}
# The fuzzer driver (tests/fuzz.sh); built once per machine.
cargo fuzz --version >/dev/null 2>&1 || cargo install --locked --quiet cargo-fuzz
# The real QRMI SDK for the job-side tests (tests/integration/tests/qrmi_sdk.rs); cached.
bash "$(dirname "$0")/install-qrmi-sdk.sh" >/dev/null
