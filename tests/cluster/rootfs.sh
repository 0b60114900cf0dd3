# shellcheck shell=bash
# Sourced by cluster.sh: Slurm releases other than the host's, each run from a
# Debian root filesystem built with debootstrap.
#
#   release  Debian suite  how the cluster runs it
#   22.05    bookworm      the host's own packages (no rootfs; the default)
#   24.11    trixie        rootfs  ${SPANK_ROOTFS_CACHE:-/var/cache/spank-rootfs}/trixie
#   26.05    sid           rootfs  ${SPANK_ROOTFS_CACHE:-/var/cache/spank-rootfs}/sid
#
# The cached rootfs is never written by a cluster: each cluster instance mounts
# an overlay of it (its own upper layer) at $ROOT_BASE/root, outside the
# scratch dir (so wiping the scratch dir can never descend into a bind of /dev),
# binds /proc, /sys, /dev (recursive, made slaves so unmounting never touches
# the host's) and the scratch dir at the same path, and runs munged, slurmctld,
# slurmd and every client chrooted into it. `down` unmounts all of it.
#
# A cached rootfs is rebuilt when missing or stale: its stamp (suite, include
# list, archive URI) differs from what this file asks for, or it is older than
# SPANK_ROOTFS_MAX_AGE_DAYS (default 14 days: sid moves). A rootfs that a running
# cluster has mounted is never replaced (used stale, with a warning).
# Uses: ID, SCRATCH, RUN_DIR, LOG_DIR, CONF, CTL_ADDR, CTL_NAME, NODES, NODE_ADDR, msg, die,
# pid_alive, stop_pids (cluster.sh); packages_for (tests/packages.sh, sourced by cluster.sh).

ROOTFS_CACHE=${SPANK_ROOTFS_CACHE:-/var/cache/spank-rootfs}
ROOTFS_MAX_AGE_DAYS=${SPANK_ROOTFS_MAX_AGE_DAYS:-14}
ROOTFS_INCLUDE=$(packages_for rootfs | paste -sd,)
ROOT_BASE=/run/spank-rootfs-$ID
RELEASE_FILE=$SCRATCH/release
RELEASE=22.05
SUITE=bookworm
ROOT=
# Prefix for Slurm commands: empty (host) or "chroot $ROOT" (word-split on purpose:
# the path is ours and has no spaces).
IN_ROOT=

release_suite() {
	case $1 in
	22.05) echo bookworm ;;
	24.11) echo trixie ;;
	26.05) echo sid ;;
	*) return 1 ;;
	esac
}

# set_release REL: the release this instance runs.
set_release() {
	SUITE=$(release_suite "$1") || die "--release '$1': expected one of 22.05 (host packages), 24.11 (Debian trixie), 26.05 (Debian sid)"
	RELEASE=$1
	if [[ $RELEASE == 22.05 ]]; then
		ROOT=
		IN_ROOT=
	else
		ROOT=$ROOT_BASE/root
		IN_ROOT="chroot $ROOT"
	fi
}

# The release of the cluster already configured in SCRATCH (down, status, as-user...).
load_release() {
	local r=22.05
	[[ -f $RELEASE_FILE ]] && r=$(cat "$RELEASE_FILE")
	set_release "$r"
}

# The Debian archive URI of this machine's apt configuration (no host hard-coded).
rootfs_mirror() {
	local f uri
	[[ -n ${SPANK_ROOTFS_MIRROR:-} ]] && { echo "$SPANK_ROOTFS_MIRROR"; return 0; }
	shopt -s nullglob
	for f in /etc/apt/sources.list.d/*.sources; do
		uri=$(awk '
			function flush() { if (uris != "" && base) { print uris; found = 1; exit } uris = ""; base = 0 }
			/^[ \t]*$/ { flush(); next }
			/^[ \t]*#/ { next }
			tolower($1) == "uris:" { uris = $2; next }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i !~ /[-\/](security|updates|backports)$/) base = 1; next }
			END { if (!found) flush() }' "$f")
		[[ -n $uri ]] && { shopt -u nullglob; echo "$uri"; return 0; }
	done
	shopt -u nullglob
	for f in /etc/apt/sources.list; do
		[[ -r $f ]] || continue
		uri=$(awk '$1 == "deb" && $2 !~ /^\[/ && $3 !~ /-(security|updates|backports)$/ { print $2; exit }' "$f")
		[[ -n $uri ]] && { echo "$uri"; return 0; }
	done
	return 1
}

# Is the cached rootfs DIR in use as an overlay lower layer (a running cluster)?
rootfs_in_use() { grep -q "lowerdir=$1[,: ]" /proc/mounts; }

# rootfs_ensure SUITE: the cached rootfs of SUITE exists and is fresh; prints its path.
rootfs_ensure() {
	local suite=$1 dir=$ROOTFS_CACHE/$1 mirror want have t0 rc
	mirror=$(rootfs_mirror) || die "no Debian archive URI in /etc/apt (set SPANK_ROOTFS_MIRROR)"
	want="suite=$suite include=$ROOTFS_INCLUDE mirror=$mirror"
	mkdir -p "$ROOTFS_CACHE"
	# One builder per suite at a time (clusters of several instances may start together).
	exec {lockfd}>"$ROOTFS_CACHE/.lock-$suite"
	flock "$lockfd"
	have=$(cat "$dir/.spank-rootfs-stamp" 2>/dev/null || true)
	if [[ $have == "$want" && -x $dir/usr/sbin/slurmd ]]; then
		if [[ -n $(find "$dir/.spank-rootfs-stamp" -mtime "-$ROOTFS_MAX_AGE_DAYS") ]]; then
			msg "rootfs $suite: cached in $dir ($(cat "$dir/.spank-slurm-version" 2>/dev/null))"
			exec {lockfd}>&-
			echo "$dir"
			return 0
		fi
		msg "rootfs $suite: older than $ROOTFS_MAX_AGE_DAYS days: rebuilding"
	elif [[ -e $dir ]]; then
		msg "rootfs $suite: stamp [$have] != [$want]: rebuilding"
	fi
	if [[ -e $dir ]] && rootfs_in_use "$dir"; then
		msg "WARNING: rootfs $suite is stale but mounted by a running cluster: using it as is"
		exec {lockfd}>&-
		echo "$dir"
		return 0
	fi
	command -v debootstrap >/dev/null || die "debootstrap missing (apt-get install debootstrap)"
	# Never rm -rf a tree with something mounted inside.
	if grep -q " $dir.new/" /proc/mounts; then die "$dir.new has mounts; refusing to remove it"; fi
	rm -rf "$dir.new"
	msg "rootfs $suite: debootstrap --variant=minbase --include=$ROOTFS_INCLUDE $suite from $mirror (log $ROOTFS_CACHE/$suite.log)"
	t0=$SECONDS
	rc=0
	debootstrap --variant=minbase --include="$ROOTFS_INCLUDE" "$suite" "$dir.new" "$mirror" \
		>"$ROOTFS_CACHE/$suite.log" 2>&1 || rc=$?
	if ((rc)); then
		tail -n 30 "$ROOTFS_CACHE/$suite.log" >&2
		die "debootstrap $suite failed (exit $rc); full log $ROOTFS_CACHE/$suite.log"
	fi
	chroot "$dir.new" dpkg-query -W -f='${Version}' slurmd >"$dir.new/.spank-slurm-version"
	echo "$want" >"$dir.new/.spank-rootfs-stamp"
	if [[ -e $dir ]]; then
		if grep -q " $dir/" /proc/mounts; then die "$dir has mounts; refusing to replace it"; fi
		rm -rf "$dir"
	fi
	mv "$dir.new" "$dir"
	msg "rootfs $suite: built in $((SECONDS - t0))s, slurmd $(cat "$dir/.spank-slurm-version")"
	exec {lockfd}>&-
	echo "$dir"
}

# Our mount points under ROOT_BASE, deepest first.
rootfs_mounts() {
	awk -v b="$ROOT_BASE/" 'index($5, b) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# rootfs_mount: overlay of the cached rootfs + binds, for this instance.
rootfs_mount() {
	local lower
	lower=$(rootfs_ensure "$SUITE")
	mkdir -p "$ROOT_BASE/upper" "$ROOT_BASE/work" "$ROOT"
	mount -t overlay "spank-rootfs-$ID" -o "lowerdir=$lower,upperdir=$ROOT_BASE/upper,workdir=$ROOT_BASE/work" "$ROOT"
	mount -t proc proc "$ROOT/proc"
	mount --rbind /sys "$ROOT/sys"
	mount --make-rslave "$ROOT/sys"
	mount --rbind /dev "$ROOT/dev"
	mount --make-rslave "$ROOT/dev"
	mkdir -p "$ROOT$SCRATCH"
	mount --bind "$SCRATCH" "$ROOT$SCRATCH"
	# Name resolution of the machine (nodes are addressed by IP; this is for the tools).
	cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
}

# rootfs_umount: every mount under ROOT_BASE gone, then ROOT_BASE removed.
rootfs_umount() {
	local m left
	[[ -d $ROOT_BASE ]] || return 0
	while read -r m; do
		[[ -n $m ]] || continue
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || msg "WARNING: cannot unmount $m"
	done < <(rootfs_mounts)
	left=$(rootfs_mounts)
	if [[ -n $left ]]; then
		msg "WARNING: still mounted, $ROOT_BASE kept: $(tr '\n' ' ' <<<"$left")"
		return 1
	fi
	rm -rf --one-file-system "$ROOT_BASE"
}

# Users with the host's uids inside the rootfs (files in the shared dir match).
rootfs_user() {
	local name=$1 uid gid
	uid=$(id -u "$name") gid=$(id -g "$name")
	chroot "$ROOT" getent group "$gid" >/dev/null || chroot "$ROOT" groupadd -g "$gid" "$name"
	chroot "$ROOT" id -u "$name" &>/dev/null || chroot "$ROOT" useradd -m -u "$uid" -g "$gid" -s /bin/bash "$name"
}

rootfs_munge_ok() { chroot "$ROOT" sh -c 'munge -n | unmunge' >/dev/null 2>&1; }

# munged of the rootfs (own key, own socket under ROOT/run/munge), pid in RUN_DIR/munged.pid.
rootfs_munge_start() {
	local pid
	if [[ ! -s $ROOT/etc/munge/munge.key ]]; then
		chroot "$ROOT" mungekey -c -f -k /etc/munge/munge.key
	fi
	mkdir -p "$ROOT/run/munge" "$ROOT/var/log/munge" "$ROOT/var/lib/munge"
	chroot "$ROOT" chown munge:munge /run/munge
	chroot "$ROOT" chown -R munge:munge /var/log/munge /var/lib/munge /etc/munge
	chmod 0400 "$ROOT/etc/munge/munge.key"
	chroot "$ROOT" runuser -u munge -- /usr/sbin/munged </dev/null >>"$LOG_DIR/munged.out" 2>&1
	for _ in $(seq 50); do
		rootfs_munge_ok && break
		sleep 0.1
	done
	rootfs_munge_ok || die "munged in $ROOT does not answer (munge -n | unmunge)"
	pid=$(cat "$ROOT/run/munge/munged.pid" 2>/dev/null || true)
	pid_alive "$pid" munged || die "munged answers but $ROOT/run/munge/munged.pid ($pid) is not munged"
	echo "$pid" >"$RUN_DIR/munged.pid"
	msg "munged in the $RELEASE rootfs: pid $pid"
}

# /etc/hosts of this instance's rootfs (its own overlay layer). From 24.11 on slurmctld
# resolves the submit host's NAME (srun/salloc's alloc node) to answer it; debootstrap
# leaves no /etc/hosts, so that name went to DNS, which does not know it, and slurmctld
# retried for 10 s per job while it stopped scheduling. The clients run on this machine and
# are reached at the bridge address, as on 22.05 (where the source address was used).
rootfs_hosts() {
	local n
	{
		echo "# Written by tests/cluster/rootfs.sh for cluster $ID"
		echo "127.0.0.1 localhost"
		echo "$CTL_ADDR $CTL_NAME $(hostname)"
		for n in "${NODES[@]}"; do echo "${NODE_ADDR[$n]} $n"; done
	} >"$ROOT/etc/hosts"
	chmod 0644 "$ROOT/etc/hosts"
}

# Part of `up` for a rootfs release, after prepare_scratch and before write_configs.
rootfs_up() {
	echo "$RELEASE" >"$RELEASE_FILE"
	rootfs_mount
	rootfs_hosts
	rootfs_munge_start
}

# Part of `down` for a rootfs release (after the slurm daemons are stopped):
# its munged (private to this cluster), then every mount.
rootfs_down() {
	local p
	[[ -n $ROOT ]] || return 0
	p=$(cat "$RUN_DIR/munged.pid" 2>/dev/null || true)
	if pid_alive "$p" munged; then
		msg "stopping munged of the $RELEASE rootfs: $p"
		stop_pids "$STOP_TIMEOUT" "$p"
	fi
	rm -f "$RUN_DIR/munged.pid"
	# Anything else still running inside our rootfs (found by its root directory).
	local pids=() q
	for q in /proc/[0-9]*; do
		[[ $(readlink "$q/root" 2>/dev/null) == "$ROOT" ]] && pids+=("${q#/proc/}")
	done
	if ((${#pids[@]})); then
		msg "stopping leftover processes in the rootfs: ${pids[*]}"
		stop_pids 2 "${pids[@]}"
	fi
	rootfs_umount
}

# Slurm's plugin dir as seen by the daemons (inside ROOT for a rootfs release).
rootfs_plugin_dir() {
	local f
	f=$(find "$ROOT"/usr/lib -name auth_munge.so -path '*slurm*' -print -quit 2>/dev/null)
	[[ -n $f ]] || die "no Slurm plugin dir (auth_munge.so) in $ROOT"
	f=$(dirname "$f")
	echo "${f#"$ROOT"}"
}
