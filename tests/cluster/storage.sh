# shellcheck shell=bash
# Sourced by cluster.sh: what every node has of its own, as on real hosts, and the cluster's
# shared storage on GlusterFS.
#
# Per node (always): a persistent mount namespace, bind-mounted at $NODE_NS_DIR/NODE
# (/run/spank-ns-ID, outside the scratch dir), entered by everything of that node (its munged,
# its GlusterFS client, slurmd and so every job step). In it:
# - its own munged: $SCRATCH/munge/NODE bound over /run/munge (inside the rootfs for 24.11 /
#   26.05), one key for the cluster (the controller's: /etc/munge/munge.key of the host or of the
#   rootfs). A credential is decoded by each node's own munged, as on a real cluster: a Slurm
#   built with default options rejects one that a shared munged already decoded for another node.
# - node_mount_setup NODE: the node's mounts (add per-node mounts there).
#
# GlusterFS (default on; `up --no-gluster` keeps the plain local directory): glusterd runs in
# a storage server namespace `fs` (network namespace NS_PREFIX-fs at NET.3 on the bridge, and
# its own mount namespace in which $SCRATCH/gluster/run is bound over /run/gluster), so its
# ports (24007, bricks from 49152) and sockets never meet another instance's; its working
# directory is $SCRATCH/gluster/lib (never /var/lib/glusterd). One volume `spankID` with one
# brick $SCRATCH/gluster/brick; its subdirectory shared/ is mounted at $SPANK_SHARED_DIR by a
# FUSE client of each node (in the node's namespaces) and one of the host (submit side: tests,
# as-user). With --backup-ctl its subdirectory state/ is StateSaveLocation, mounted by the host
# (primary slurmctld) and by ctl2's own client, as at the HA site. Mount options of the clients:
# SPANK_GLUSTER_MOUNT_OPTS (e.g. attribute-timeout=0,entry-timeout=0).
#
# Uses cluster.sh's variables and helpers (SCRATCH, RUN_DIR, LOG_DIR, SHARED_DIR, NODES, NET,
# NS_PREFIX, ID, BRIDGE, ROOT, IN_ROOT, msg, die, pid_alive, stop_pids, start_daemon).

GLUSTER=1
NODE_NS_DIR=/run/spank-ns-$ID
MUNGE_DIR=$SCRATCH/munge
GL_DIR=$SCRATCH/gluster
GL_NS=${NS_PREFIX}fs
GL_ADDR=$NET.3
GL_VETH=spk$ID-fs
GL_VOLUME=spank$ID
GL_MOUNT_OPTS=${SPANK_GLUSTER_MOUNT_OPTS:-}

# in_node NODE CMD...: CMD in NODE's network and mount namespaces.
in_node() {
	local n=$1
	shift
	nsenter --net="/run/netns/$NS_PREFIX$n" --mount="$NODE_NS_DIR/$n" -- "$@"
}

# The command prefix that starts a node's slurmd in its namespaces (cluster.sh adds unshare --uts).
node_enter() { echo "nsenter --net=/run/netns/$NS_PREFIX$1 --mount=$NODE_NS_DIR/$1"; }

gl() { nsenter -t "$(cat "$RUN_DIR/glusterd.pid")" -m -n gluster --mode=script "$@"; }

# gl_mount SRC_SUBDIR MOUNTPOINT LOGNAME [CMD_PREFIX...]: a FUSE client of the volume.
gl_mount() {
	local sub=$1 mp=$2 log=$3 opts
	shift 3
	opts="log-file=$LOG_DIR/gluster/$log.log${GL_MOUNT_OPTS:+,$GL_MOUNT_OPTS}"
	"$@" mount -t glusterfs -o "$opts" "$GL_ADDR:/$GL_VOLUME/$sub" "$mp" ||
		die "mount of $GL_ADDR:/$GL_VOLUME/$sub on $mp ($log) failed; see $LOG_DIR/gluster/$log.log"
}

# ---------------------------------------------------------------- up

# The storage server: namespace, glusterd, volume with shared/ and state/, the host's mounts.
gluster_up() {
	local vol=$GL_DIR/glusterd.vol t0=$SECONDS
	command -v glusterd >/dev/null && command -v mount.glusterfs >/dev/null ||
		die "GlusterFS missing (apt-get install glusterfs-server glusterfs-client), or up --no-gluster"
	mkdir -p "$GL_DIR/lib" "$GL_DIR/run" "$GL_DIR/brick" "$LOG_DIR/gluster" /run/gluster
	ip netns add "$GL_NS"
	ip link add "$GL_VETH" type veth peer name "spkp$ID-fs"
	ip link set "spkp$ID-fs" netns "$GL_NS"
	ip link set "$GL_VETH" master "$BRIDGE"
	ip link set "$GL_VETH" up
	ip -n "$GL_NS" link set "spkp$ID-fs" name eth0
	ip -n "$GL_NS" addr add "$GL_ADDR/$NET_CIDR" dev eth0
	ip -n "$GL_NS" link set eth0 up
	ip -n "$GL_NS" link set lo up
	cat >"$vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $GL_DIR/lib
    option transport-type socket
    option transport.socket.listen-port 24007
    option transport.socket.bind-address $GL_ADDR
    option ping-timeout 0
    option event-threads 1
    option base-port 49152
    option max-port 49251
end-volume
EOF
	# No geo-replication here: glusterd runs its python gsyncd several times at start (15 s on a
	# busy 2-core machine) unless it is not installed (exec fails with ENOENT; any other failure
	# is fatal). In the server's mount namespace a script whose interpreter does not exist
	# stands in for it.
	local gsyncd no_georep=
	printf '#!/nonexistent/no-geo-replication\n' >"$GL_DIR/no-gsyncd"
	chmod 0755 "$GL_DIR/no-gsyncd"
	for gsyncd in /usr/lib/*/glusterfs/gsyncd /usr/libexec/glusterfs/gsyncd; do
		[[ -e $gsyncd ]] && no_georep+="mount --bind '$GL_DIR/no-gsyncd' '$gsyncd' && "
	done
	start_daemon glusterd glusterd \
		nsenter --net="/run/netns/$GL_NS" unshare --mount --propagation private sh -c \
		"mount -t tmpfs -o mode=0755 spank-gluster-run /run && mkdir -p /run/gluster && mount --bind '$GL_DIR/run' /run/gluster && ${no_georep}exec glusterd -N -f '$vol' -l '$LOG_DIR/gluster/glusterd.log'"
	local ok=0
	for _ in $(seq 100); do
		gl volume list &>/dev/null && { ok=1; break; }
		sleep 0.1
	done
	((ok)) || die "glusterd does not answer (log $LOG_DIR/gluster/glusterd.log)"
	# force: the brick is on the root filesystem.
	# A tmpfs over /run in the server's mount namespace: glusterd's socket /run/glusterd.socket
	# is outside /run/gluster, and two clusters started side by side met at it (the CLI of one
	# talked to the other's glusterd: "Host ... is not in 'Peer in Cluster' state"). The retry
	# covers a glusterd that answers before it knows its own address.
	local out
	for _ in $(seq 50); do
		out=$(gl volume create "$GL_VOLUME" "$GL_ADDR:$GL_DIR/brick" force 2>&1) && break
		[[ $out == *"Peer in Cluster"* ]] || die "volume create failed: $out"
		sleep 0.2
	done
	[[ $out != *"Peer in Cluster"* ]] || die "volume create failed: $out"
	gl volume start "$GL_VOLUME" >/dev/null
	mkdir -p "$GL_DIR/root"
	gl_mount "" "$GL_DIR/root" host-root
	mkdir -p "$GL_DIR/root/shared" "$GL_DIR/root/state"
	chown "$TEST_USER:" "$GL_DIR/root/shared"
	chmod 1777 "$GL_DIR/root/shared"
	chmod 0700 "$GL_DIR/root/state"
	umount "$GL_DIR/root"
	gl_mount shared "$SHARED_DIR" host
	if ((BACKUP_CTL)); then
		gl_mount state "$SCRATCH/state" host-state
		sed -i "s|^StateSaveLocation=.*|StateSaveLocation=$SCRATCH/state|" "$CONF"
	fi
	if [[ -n $ROOT ]]; then
		mount --bind "$SHARED_DIR" "$ROOT$SHARED_DIR"
		((BACKUP_CTL == 0)) || mount --bind "$SCRATCH/state" "$ROOT$SCRATCH/state"
	fi
	msg "GlusterFS: volume $GL_VOLUME on $GL_ADDR (glusterd pid $(cat "$RUN_DIR/glusterd.pid")), mounted at $SHARED_DIR$( ((BACKUP_CTL)) && echo " and $SCRATCH/state") in $((SECONDS - t0))s"
}

# node_mount_setup NODE: the node's own mounts, run once its mount namespace exists.
node_mount_setup() {
	local n=$1
	mkdir -p "$MUNGE_DIR/$n"
	in_node "$n" mount --bind "$MUNGE_DIR/$n" "$ROOT/run/munge"
	if ((GLUSTER)); then
		gl_mount shared "$SHARED_DIR" "$n" in_node "$n"
		[[ -z $ROOT ]] || in_node "$n" mount --bind "$SHARED_DIR" "$ROOT$SHARED_DIR"
	fi
	private_dir_mount "$n"
}

# node_munge_start NODE: the node's munged (socket, pid and seed in its /run/munge).
node_munge_start() {
	local n=$1 pid
	mkdir -p "$MUNGE_DIR/$n"
	$IN_ROOT chown munge:munge "$MUNGE_DIR/$n"
	chmod 0755 "$MUNGE_DIR/$n"
	rm -f "$MUNGE_DIR/$n"/munge.socket.2* "$MUNGE_DIR/$n/munged.pid"
	: >"$LOG_DIR/munged-$n.log"
	$IN_ROOT chown munge: "$LOG_DIR/munged-$n.log"
	in_node "$n" $IN_ROOT runuser -u munge -- /usr/sbin/munged --log-file="$LOG_DIR/munged-$n.log" \
		--seed-file=/run/munge/munged.seed </dev/null >>"$LOG_DIR/munged-$n.out" 2>&1 ||
		die "munged of $n did not start ($LOG_DIR/munged-$n.log)"
	for _ in $(seq 50); do
		pid=$(cat "$MUNGE_DIR/$n/munged.pid" 2>/dev/null || true)
		pid_alive "$pid" munged && [[ -S $MUNGE_DIR/$n/munge.socket.2 ]] && break
		sleep 0.1
	done
	pid_alive "$pid" munged || die "munged of $n: no pid in $MUNGE_DIR/$n/munged.pid"
	echo "$pid" >"$RUN_DIR/munged-$n.pid"
}

# node_ns_new NODE: NODE's persistent mount namespace (a private copy of the host's mounts).
node_ns_new() {
	: >"$NODE_NS_DIR/$1"
	unshare --mount="$NODE_NS_DIR/$1" --propagation private true
}

# node_up NODE: its mount namespace, mounts and munged (before its slurmd; again by start-node).
node_up() {
	local n=$1
	if [[ ! -e $NODE_NS_DIR/$n.ready ]]; then
		mountpoint -q "$NODE_NS_DIR/$n" 2>/dev/null || node_ns_new "$n"
		node_mount_setup "$n"
		: >"$NODE_NS_DIR/$n.ready"
	elif ((GLUSTER)) && { [[ -e $NODE_NS_DIR/$n.killed ]] || ! in_node "$n" stat -t "$SHARED_DIR" &>/dev/null; }; then
		# After kill-node its client is gone ("Transport endpoint is not connected"): remount.
		[[ -z $ROOT ]] || in_node "$n" umount -l "$ROOT$SHARED_DIR" 2>/dev/null || true
		in_node "$n" umount -l "$SHARED_DIR" 2>/dev/null || true
		gl_mount shared "$SHARED_DIR" "$n" in_node "$n"
		[[ -z $ROOT ]] || in_node "$n" mount --bind "$SHARED_DIR" "$ROOT$SHARED_DIR"
	fi
	rm -f "$NODE_NS_DIR/$n.killed"
	pid_alive "$(cat "$RUN_DIR/munged-$n.pid" 2>/dev/null)" munged || node_munge_start "$n"
}

# Part of `up`, after net_up and before the slurm daemons start.
storage_up() {
	local n t0=$SECONDS
	mkdir -p "$NODE_NS_DIR" "$MUNGE_DIR"
	# A namespace file must be bound on a private mount (no propagation loop).
	mount --bind "$NODE_NS_DIR" "$NODE_NS_DIR"
	mount --make-private "$NODE_NS_DIR"
	# The nodes' namespaces first: a copy of the host's mounts made later would hold the host's
	# GlusterFS mount under each node's own.
	for n in "${NODES[@]}"; do node_ns_new "$n"; done
	if ((GLUSTER)); then gluster_up; fi
	for n in "${NODES[@]}"; do node_up "$n"; done
	msg "nodes: own mount namespace and munged each$( ((GLUSTER)) && echo ", GlusterFS client each") ($((SECONDS - t0))s)"
}

# Shell words for ctl2's mount namespace (backup-ctl.sh): its own client for StateSaveLocation
# instead of the copy of the host's.
storage_ctl2_mounts() {
	((GLUSTER)) || return 0
	echo "umount '$SCRATCH/state' && mount -t glusterfs -o 'log-file=$LOG_DIR/gluster/ctl2.log${GL_MOUNT_OPTS:+,$GL_MOUNT_OPTS}' '$GL_ADDR:/$GL_VOLUME/state' '$SCRATCH/state' && "
}

storage_env() {
	cat >>"$ENV_FILE" <<EOF
export SPANK_SHARED_FS=$( ((GLUSTER)) && echo glusterfs || echo local)
export SPANK_MUNGE_DIR=$MUNGE_DIR
export SPANK_NODE_NS_DIR=$NODE_NS_DIR
EOF
}

# ---------------------------------------------------------------- down

# Part of `down`, after the slurm daemons and the processes in the node namespaces were stopped
# (that includes each node's munged and GlusterFS client): node mounts and namespaces, the
# host's mounts, the volume, glusterd and its bricks, the server namespace, its state.
storage_down() {
	local n m p ino link pids=()
	for n in "${NODES[@]}"; do
		p=$(cat "$RUN_DIR/munged-$n.pid" 2>/dev/null || true)
		pid_alive "$p" munged && pids+=("$p")
		rm -f "$RUN_DIR/munged-$n.pid"
	done
	((${#pids[@]} == 0)) || stop_pids "$STOP_TIMEOUT" "${pids[@]}"
	if [[ -d $NODE_NS_DIR ]]; then
		for n in "${NODES[@]}"; do
			mountpoint -q "$NODE_NS_DIR/$n" 2>/dev/null || continue
			for m in ${ROOT:+"$ROOT$SHARED_DIR"} "$SHARED_DIR"; do
				nsenter --mount="$NODE_NS_DIR/$n" umount "$m" 2>/dev/null ||
					nsenter --mount="$NODE_NS_DIR/$n" umount -l "$m" 2>/dev/null || true
			done
			umount "$NODE_NS_DIR/$n" 2>/dev/null || umount -l "$NODE_NS_DIR/$n" 2>/dev/null || true
		done
		while mountpoint -q "$NODE_NS_DIR" 2>/dev/null; do umount "$NODE_NS_DIR" 2>/dev/null || umount -l "$NODE_NS_DIR" || break; done
		rm -rf --one-file-system "$NODE_NS_DIR"
	fi
	# The host's clients (deepest first).
	while read -r m; do
		[[ -n $m ]] || continue
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || msg "WARNING: cannot unmount $m"
	done < <(awk -v s="$SCRATCH/" -v r="${ROOT:-/nonexistent}$SCRATCH/" \
		'(index($5, s) == 1 || index($5, r) == 1) && $0 ~ / - fuse\.glusterfs / { print $5 }' /proc/self/mountinfo | sort -r)
	for m in ${ROOT:+"$ROOT$SCRATCH/state"} ${ROOT:+"$ROOT$SHARED_DIR"}; do
		mountpoint -q "$m" 2>/dev/null && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
	done
	# The server: volume stopped and deleted, then glusterd and the bricks (everything in its
	# network namespace), by PID.
	p=$(cat "$RUN_DIR/glusterd.pid" 2>/dev/null || true)
	if pid_alive "$p" glusterd; then
		timeout 20 nsenter -t "$p" -m -n gluster --mode=script volume stop "$GL_VOLUME" force &>/dev/null || true
		timeout 20 nsenter -t "$p" -m -n gluster --mode=script volume delete "$GL_VOLUME" &>/dev/null || true
	fi
	pids=()
	pid_alive "$p" glusterd && pids+=("$p")
	if [[ -e /run/netns/$GL_NS ]] && ino=$(stat -L -c %i "/run/netns/$GL_NS" 2>/dev/null); then
		for p in /proc/[0-9]*; do
			link=$(readlink "$p/ns/net" 2>/dev/null) || continue
			[[ $link == "net:[$ino]" && " ${pids[*]} " != *" ${p#/proc/} "* ]] && pids+=("${p#/proc/}")
		done
	fi
	if ((${#pids[@]})); then
		msg "stopping GlusterFS server processes: $(for p in "${pids[@]}"; do printf '%s(%s) ' "$p" "$(pid_comm "$p")"; done)"
		stop_pids "$STOP_TIMEOUT" "${pids[@]}"
	fi
	rm -f "$RUN_DIR/glusterd.pid"
	if [[ -e /run/netns/$GL_NS ]]; then
		ip netns del "$GL_NS" 2>/dev/null || true
		rm -f "/run/netns/$GL_NS" 2>/dev/null || true
	fi
	if ip link show "$GL_VETH" &>/dev/null; then ip link del "$GL_VETH" 2>/dev/null || true; fi
	# Its state (working dir, brick with trusted.* xattrs), unless something is still mounted.
	if [[ -d $GL_DIR ]] && ! grep -q " $GL_DIR/" /proc/mounts; then rm -rf --one-file-system "$GL_DIR"; fi
	return 0
}
