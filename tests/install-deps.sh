#!/usr/bin/env bash
# Installs the Debian packages the project needs (Slurm 22.05 + headers, munge, libclang for
# bindgen, a C compiler, iproute2 for the test cluster's namespaces, the packaging tools).
# Idempotent; root only.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
    slurmctld slurmd slurm-client munge libslurm-dev
    libclang-dev pkg-config
    build-essential binutils
    iproute2 util-linux procps
    ffmpeg                      # frames video
    debootstrap                 # root filesystems of the 24.11 / 26.05 test clusters
    valgrind                    # C-host tests under memcheck
    e2fsprogs                   # small loop-mounted filesystems (full / read-only frame dir)
    ca-certificates
    dpkg-dev lintian            # packaging/deb/build.sh (dpkg-shlibdeps, dpkg-deb) and its check
    rpm                         # packaging/rpm/build.sh: rpmbuild checks the RPM spec
    python3                     # tests/package-test.sh maps the old plugin during an upgrade
)
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
