# shellcheck shell=bash
# The Debian packages of the project, listed once. Sourced by tests/install-deps.sh (this
# machine), tests/cluster/cluster.sh (what `up` installs when the Slurm daemons are missing) and
# tests/cluster/rootfs.sh (the debootstrapped root filesystems of the 24.11 / 26.05 clusters).
#
#   packages_for host|cluster|rootfs     the packages of that place, one a line, in table order
#
# Each line: a package, then the places that install it. The rootfs order is part of a cached
# rootfs's stamp: reordering those lines rebuilds the cached root filesystems once.

packages_table() {
	cat <<'EOF_TABLE'
slurmd           host cluster rootfs
slurmctld        host cluster rootfs
slurm-client     host cluster rootfs
munge            host cluster rootfs
slurmdbd         host cluster rootfs   # accounting (tests/cluster/accounting.sh)
mariadb-server   host cluster          # the host's mariadbd serves every release's slurmdbd
passwd                cluster rootfs   # useradd for the cluster's test users
python3          host         rootfs   # the QRMI SDK's virtualenv in the rootfs; package-test maps the old plugin during an upgrade
python3-venv                  rootfs
iproute2         host cluster          # the cluster's namespaces and bridge
util-linux       host cluster          # nsenter, unshare, runuser
glusterfs-server host cluster          # the cluster's shared directory (glusterd, brick)
glusterfs-client host cluster          # its FUSE clients (one per node, one on the host)
libslurm-dev     host                  # slurm-sys bindings
libclang-dev     host                  # bindgen
pkg-config       host
build-essential  host
binutils         host
procps           host
ffmpeg           host                  # frames video
chromium         host                  # headless browser that checks the frames report page
debootstrap      host                  # root filesystems of the 24.11 / 26.05 test clusters
valgrind         host                  # C-host tests under memcheck
e2fsprogs        host                  # small loop-mounted filesystems (full / read-only frame dir)
ca-certificates  host
dpkg-dev         host                  # packaging/deb/build.sh (dpkg-shlibdeps, dpkg-deb)
lintian          host                  # checks the Debian packages
rpm              host                  # packaging/rpm/build.sh: rpmbuild checks the RPM spec
EOF_TABLE
}

packages_for() {
	local name places
	while read -r name places; do
		places=${places%%#*}
		[[ " $places " == *" $1 "* ]] && echo "$name"
	done < <(packages_table)
	return 0
}
