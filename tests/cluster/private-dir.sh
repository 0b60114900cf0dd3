# shellcheck shell=bash
# Sourced by cluster.sh: `up --private-dir PATH` gives each node its own directory at PATH, so
# nodes really do not share it (a node-local disk): $SCRATCH/private/NODE is bind-mounted at
# PATH (at $ROOT/PATH, what the chroot sees, with --release 24.11/26.05) in each node's mount
# namespace (storage.sh: slurmd, so every slurmstepd and task, runs in it). The host (submit host: as-user,
# the tests) has its own: $SCRATCH/private/host bound at PATH in no namespace at all, PATH
# being a plain directory on the host (in the rootfs overlay with a release). Tests reach a
# node's copy from the host at $SCRATCH/private/NODE (SPANK_PRIVATE_BACKING in cluster.env).
PRIVATE_DIR_FILE=$SCRATCH/run/private-dir

# private_dir_set PATH (during up): checks PATH, creates the per-node dirs, remembers it.
private_dir_set() {
	local p=$1 n
	[[ $p == /* && $p != *..* && $p != / ]] || die "--private-dir '$p': expected an absolute path"
	case $p in /tmp/?* | /var/tmp/?* | /scratch/?*) ;; *) die "--private-dir '$p': expected a path under /tmp, /var/tmp or /scratch (up wipes it)" ;; esac
	rm -rf "${ROOT}$p"
	mkdir -p "${ROOT}$p"
	chmod 1777 "${ROOT}$p"
	for n in "${NODES[@]}"; do
		mkdir -p "$SCRATCH/private/$n"
		chmod 1777 "$SCRATCH/private/$n"
	done
	echo "$p" >"$PRIVATE_DIR_FILE"
}

# private_dir_mount NODE: binds NODE's own dir at PATH inside the node's mount namespace
# (storage.sh's node_mount_setup calls it; nothing without --private-dir).
private_dir_mount() {
	[[ -s $PRIVATE_DIR_FILE ]] || return 0
	in_node "$1" mount --bind "$SCRATCH/private/$1" "${ROOT}$(cat "$PRIVATE_DIR_FILE")"
}

# private_dir_env: lines for cluster.env.
private_dir_env() {
	[[ -s $PRIVATE_DIR_FILE ]] || return 0
	echo "export SPANK_PRIVATE_DIR=$(cat "$PRIVATE_DIR_FILE")"
	echo "export SPANK_PRIVATE_BACKING=$SCRATCH/private"
}

# private_dir_down: the host's copy goes (the nodes' go with the scratch dir).
private_dir_down() {
	[[ -s $PRIVATE_DIR_FILE ]] || return 0
	rm -rf "${ROOT}$(cat "$PRIVATE_DIR_FILE")"
	rm -f "$PRIVATE_DIR_FILE"
}
