#!/usr/bin/env bash
# A real multi-node Slurm test cluster on one machine, and its complete teardown.
#
#   cluster.sh up [--release 22.05|24.11|26.05] [--backup-ctl] [--no-gluster] [--no-accounting] [--private-dir PATH] [--plugins DIR]... [--plugstack FILE]
#   cluster.sh down
#   cluster.sh status
#   cluster.sh logs
#   cluster.sh dir                 (prints the scratch dir of this instance)
#   cluster.sh as-user [--user NAME] CMD...
#   cluster.sh kill-node NODE      (a node crash: SIGKILL to everything in its namespace)
#   cluster.sh start-node NODE     (its slurmd again, node resumed)
#   cluster.sh stop-ctl [--kill]   (the primary slurmctld stops; with --backup-ctl, ctl2 takes over)
#   cluster.sh start-ctl           (the primary slurmctld again)
#
# Controller `ctl` (10.88.0.1 on bridge spankbr0, own UTS namespace) and four
# slurmd nodes c1 c2 q1 q2 (10.88.0.11-14), each in its own network + UTS
# namespace. Everything lives under ${SPANK_CLUSTER_DIR:-/tmp/spank-cluster};
# the machine's /etc/slurm is never touched. See README.md beside this file.
#
# SPANK_CLUSTER_ID=K (1-9) runs a further, independent cluster beside the default
# one (K=0): its own scratch dir /tmp/spank-cluster-K, bridge spankbrK, subnet
# 10.88.K.0/24, namespaces sK-NODE and ports 6817+100K/6818+100K.
#
# --release 24.11 / 26.05 run Debian trixie's / sid's Slurm chrooted into a
# debootstrapped rootfs (rootfs.sh beside this file); 22.05 (default) is the host's.
#
# Must run as root (namespaces, bridge, daemons, users).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEMPLATES=$HERE/templates

ID=${SPANK_CLUSTER_ID:-0}
[[ $ID =~ ^[0-9]$ ]] || { echo "cluster.sh: ERROR: SPANK_CLUSTER_ID must be 0-9 (got '$ID')" >&2; exit 2; }
# Each instance its own ClusterName: spank_qrmi keys its default state directory by
# ClusterName and host, and every instance has nodes q1, q2 on this one host.
if ((ID == 0)); then
	SCRATCH=${SPANK_CLUSTER_DIR:-/tmp/spank-cluster}
	NS_PREFIX=
	CLUSTER_NAME=spanktest
else
	CLUSTER_NAME=spanktest$ID
	SCRATCH=${SPANK_CLUSTER_DIR:-/tmp/spank-cluster-$ID}
	NS_PREFIX=s$ID-
fi
BRIDGE=${SPANK_BRIDGE:-spankbr$ID}
NET=10.88.$ID
CTL_NAME=ctl
CTL_ADDR=$NET.1
NET_CIDR=24
CTL_PORT=${SPANK_CTL_PORT:-$((6817 + 100 * ID))}
SLURMD_PORT=${SPANK_SLURMD_PORT:-$((6818 + 100 * ID))}
NODES=(c1 c2 q1 q2)
declare -A NODE_ADDR=([c1]=$NET.11 [c2]=$NET.12 [q1]=$NET.13 [q2]=$NET.14)
TEST_USER=spanktest
TEST_UID=6001
TEST_USER2=spanktest2
TEST_UID2=6002
UP_TIMEOUT=${SPANK_UP_TIMEOUT:-60}
STOP_TIMEOUT=${SPANK_STOP_TIMEOUT:-5}
NODE_CPUS=${SPANK_NODE_CPUS:-4}
NODE_MEM=${SPANK_NODE_MEM:-1000}
DEBUG_LEVEL=${SPANK_SLURM_DEBUG:-info}

MARKER=$SCRATCH/.spank-cluster
RUN_DIR=$SCRATCH/run
LOG_DIR=$SCRATCH/log
SHARED_DIR=$SCRATCH/shared
PLUGINS_DIR=$SCRATCH/plugins
CONF=$SCRATCH/slurm.conf
ENV_FILE=$SCRATCH/cluster.env

# Daemons live in sbin; a sanitised PATH (sudo, runuser) may lack it.
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

msg() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { msg "ERROR: $*"; exit 1; }

usage() {
	sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

check_scratch_path() {
	[[ $SCRATCH == /* ]] || die "SPANK_CLUSTER_DIR must be absolute (got '$SCRATCH')"
	case $SCRATCH in
	/ | /tmp | /root | /home | /usr | /etc | /var | /work) die "refusing SPANK_CLUSTER_DIR=$SCRATCH" ;;
	esac
}

# ---------------------------------------------------------------- processes

# comm of a live pid, or empty
pid_comm() { cat "/proc/$1/comm" 2>/dev/null || true; }

# running: PID exists and is not a zombie (a zombie waits for its reaper,
# which is not us once the daemon was detached)
running() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[[ ${st%% *} != Z ]]
}

# pid_alive PID [COMM]: PID runs (and, when COMM is given, runs COMM)
pid_alive() {
	[[ $1 =~ ^[0-9]+$ ]] || return 1
	running "$1" || return 1
	[[ $# -lt 2 || $(pid_comm "$1") == "$2" ]]
}

# Detached daemons are reaped by pid 1, which may take a second: wait (max 3 s)
# so that `pgrep slurm` right after `down` shows no <defunct> entries.
await_reaped() {
	local p st deadline=$((SECONDS + 3))
	for p in "$@"; do
		# Our own children (a failed `up` tearing down) we reap ourselves.
		st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		st=${st##*) }
		read -r _ st _ <<<"$st"
		if [[ $st == "$$" ]]; then
			wait "$p" 2>/dev/null || true
			continue
		fi
		while [[ -d /proc/$p ]] && ((SECONDS < deadline)); do sleep 0.1; done
	done
	return 0
}

# stop_pids GRACE PID...: SIGTERM, wait up to GRACE s, then SIGKILL.
stop_pids() {
	local grace=$1 p left deadline
	shift
	(($# > 0)) || return 0
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	deadline=$((SECONDS + grace))
	while :; do
		left=()
		for p in "$@"; do running "$p" && left+=("$p"); done
		((${#left[@]} == 0)) && { await_reaped "$@"; return 0; }
		((SECONDS >= deadline)) && break
		sleep 0.2
	done
	msg "still running after ${grace}s, sending SIGKILL: ${left[*]}"
	for p in "${left[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	deadline=$((SECONDS + 5))
	while ((SECONDS < deadline)); do
		local any=0
		for p in "${left[@]}"; do running "$p" && any=1; done
		((any == 0)) && { await_reaped "$@"; return 0; }
		sleep 0.2
	done
	msg "WARNING: could not kill: ${left[*]}"
}

# Pids of every process inside one of our node network namespaces
# (slurmd, slurmstepd, job processes), found by namespace inode.
netns_pids() {
	local n ino p link
	local -A want=()
	for n in "${NODES[@]}"; do
		if [[ -e /run/netns/$NS_PREFIX$n ]] && ino=$(stat -L -c %i "/run/netns/$NS_PREFIX$n" 2>/dev/null); then
			want["net:[$ino]"]=1
		fi
	done
	((${#want[@]} > 0)) || return 0
	for p in /proc/[0-9]*; do
		link=$(readlink "$p/ns/net" 2>/dev/null) || continue
		[[ -n ${want[$link]:-} ]] && echo "${p#/proc/}"
	done
	return 0
}

# Pids of the processes in the controller's UTS namespace (slurmctld and its
# slurmscriptd child), by namespace identity recorded at start. A namespace id can
# be reused once ours is gone (e.g. by another instance's node), so a process must
# also carry our slurm.conf on its command line (slurmscriptd keeps slurmctld's).
ctl_uts_pids() {
	local want p link cmd
	want=$(cat "$RUN_DIR/slurmctld.uts" 2>/dev/null) || return 0
	[[ $want == uts:* && $want != "$(readlink /proc/self/ns/uts)" ]] || return 0
	for p in /proc/[0-9]*; do
		link=$(readlink "$p/ns/uts" 2>/dev/null) || continue
		[[ $link == "$want" ]] || continue
		cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
		[[ " $cmd " == *" -f $CONF "* ]] && echo "${p#/proc/}"
	done
	return 0
}

# Pids of slurmctld/slurmd processes started with our slurm.conf (fallback
# when pid files are gone): matched by PID through /proc/PID/cmdline.
conf_pids() {
	local p c cmd
	for p in /proc/[0-9]*; do
		c=$(cat "$p/comm" 2>/dev/null) || continue
		[[ $c == slurmctld || $c == slurmd ]] || continue
		cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
		[[ " $cmd " == *" -f $CONF "* ]] && echo "${p#/proc/}"
	done
	return 0
}

# ---------------------------------------------------------------- logs

# dump_logs [LINES]: every daemon log (last LINES lines of each, or all).
# A daemon's own stdout/stderr (LOG_DIR/NAME.out) repeats its log under -D, so
# only what is not a log line is shown from it (nsenter/unshare/sh errors,
# fatal errors before the log file opened), or all of it when the log is empty.
dump_logs() {
	local f lines=${1:-} base extra
	_show() { if [[ -n $lines ]]; then tail -n "$lines" "$1"; else cat "$1"; fi; }
	shopt -s nullglob
	for f in "$LOG_DIR"/*.log; do
		echo "==================== $f"
		_show "$f"
	done
	for f in "$LOG_DIR"/*.out; do
		base=${f%.out}
		if [[ ! -s $base.log ]]; then
			[[ -s $f ]] || continue
			echo "==================== $f"
			_show "$f"
		else
			extra=$(grep -v -E '^(slurmctld|slurmd): ' "$f" || true)
			[[ -n $extra ]] || continue
			echo "==================== $f (lines not in $(basename "$base.log"))"
			if [[ -n $lines ]]; then tail -n "$lines" <<<"$extra"; else echo "$extra"; fi
		fi
	done
	if [[ -f $RUN_DIR/munged.pid && -r /var/log/munge/munged.log ]]; then
		# Only what our munged wrote (the file is the machine's, appended to).
		local from
		from=$(cat "$RUN_DIR/munged.logstart" 2>/dev/null || echo 0)
		echo "==================== /var/log/munge/munged.log (since our munged started)"
		tail -n "+$((from + 1))" /var/log/munge/munged.log | tail -n "${lines:-50}"
	fi
	shopt -u nullglob
}

# ---------------------------------------------------------------- down

cancel_jobs() {
	local ids deadline
	[[ -f $CONF ]] || return 0
	pid_alive "$(cat "$RUN_DIR/slurmctld.pid" 2>/dev/null)" slurmctld || return 0
	ids=$(SLURM_CONF=$CONF timeout 10 $IN_ROOT squeue -h -o '%A' 2>/dev/null | tr '\n' ' ') || return 0
	[[ -n ${ids// /} ]] || return 0
	msg "cancelling jobs: $ids"
	# SIGKILL at once: everything left in the namespaces is killed afterwards anyway.
	# shellcheck disable=SC2086
	SLURM_CONF=$CONF timeout 10 $IN_ROOT scancel --full --signal=KILL $ids 2>/dev/null || true
	# shellcheck disable=SC2086
	SLURM_CONF=$CONF timeout 10 $IN_ROOT scancel $ids 2>/dev/null || true
	deadline=$((SECONDS + 5))
	while ((SECONDS < deadline)); do
		ids=$(SLURM_CONF=$CONF timeout 5 $IN_ROOT squeue -h -t R,CG,S,CF -o '%A' 2>/dev/null) || break
		[[ -z $ids ]] && break
		sleep 0.5
	done
}

# The scratch dir of another instance (SPANK_CLUSTER_ID) whose slurmctld runs, if any.
other_live_cluster() {
	local d p
	for d in /tmp/spank-cluster /tmp/spank-cluster-[1-9]; do
		[[ $d != "$SCRATCH" && -e $d/.spank-cluster ]] || continue
		p=$(cat "$d/run/slurmctld.pid" 2>/dev/null || true)
		pid_alive "$p" slurmctld || continue
		# A cluster chrooted into a release rootfs authenticates through its own munged.
		[[ $(readlink "/proc/$p/root" 2>/dev/null) == / ]] || continue
		echo "$d"
		return 0
	done
	return 1
}

do_down() {
	local quiet=${1:-} pids=() p n f other

	cancel_jobs || true

	# slurmd and slurmctld together (each takes a second or two to exit).
	for n in "${NODES[@]}"; do
		f=$RUN_DIR/slurmd-$n.pid
		[[ -f $f ]] && p=$(cat "$f") && pid_alive "$p" slurmd && pids+=("$p")
	done
	f=$RUN_DIR/slurmctld.pid
	[[ -f $f ]] && p=$(cat "$f") && pid_alive "$p" slurmctld && pids+=("$p")
	# Fallback when pid files are gone: daemons started with our slurm.conf.
	while read -r p; do [[ -n $p ]] && [[ " ${pids[*]} " != *" $p "* ]] && pids+=("$p"); done < <(conf_pids)
	if ((${#pids[@]})); then
		msg "stopping slurm daemons: $(for p in "${pids[@]}"; do printf '%s(%s) ' "$p" "$(pid_comm "$p")"; done)"
		stop_pids "$STOP_TIMEOUT" "${pids[@]}"
	fi

	# Whatever is left inside the node namespaces (slurmstepd, job processes)
	# and in the controller's UTS namespace (slurmscriptd).
	# slurmstepd ignores SIGTERM: short grace, then SIGKILL.
	mapfile -t pids < <(netns_pids; ctl_uts_pids)
	if ((${#pids[@]})); then
		msg "stopping leftover processes: $(for p in "${pids[@]}"; do printf '%s(%s) ' "$p" "$(pid_comm "$p")"; done)"
		stop_pids 2 "${pids[@]}"
	fi
	rm -f "$RUN_DIR/slurmctld.uts"
	# slurmdbd and its MariaDB (accounting.sh), once slurmctld has flushed its records.
	accounting_down || true

	# Node mount namespaces and munged, GlusterFS mounts, volume and server.
	storage_down || true
	# A rootfs release: its own munged, the leftovers chrooted in it, its mounts.
	rootfs_down || true
	# A backup controller (up --backup-ctl): its namespace and leftovers.
	backup_ctl_down || true

	# munged, only if we started it.
	f=$RUN_DIR/munged.pid
	if [[ -f $f ]]; then
		p=$(cat "$f")
		if pid_alive "$p" munged; then
			if other=$(other_live_cluster); then
				# Another instance still authenticates through it: it stops munged later.
				msg "leaving munged $p running for the cluster in $other"
				echo "$p" >"$other/run/munged.pid"
			else
				msg "stopping munged we started: $p"
				stop_pids "$STOP_TIMEOUT" "$p"
			fi
		fi
		rm -f "$f"
	fi

	# spank_qrmi's default state directory (a test may run the upstream line, which has no
	# state_dir=): this instance's part only, keyed by its ClusterName.
	rm -rf "${ROOT}/var/spool/slurm/spank_qrmi/$CLUSTER_NAME" 2>/dev/null || true

	# Network: namespaces (their veth ends go with them), host veths, bridge.
	for n in "${NODES[@]}"; do
		if [[ -e /run/netns/$NS_PREFIX$n ]]; then
			ip netns del "$NS_PREFIX$n" 2>/dev/null || true
			rm -f "/run/netns/$NS_PREFIX$n" 2>/dev/null || true
		fi
		if ip link show "spk$ID-$n" &>/dev/null; then ip link del "spk$ID-$n" 2>/dev/null || true; fi
	done
	if ip link show "$BRIDGE" &>/dev/null; then ip link del "$BRIDGE" 2>/dev/null || true; fi

	if [[ -d $RUN_DIR ]]; then
		rm -f "$RUN_DIR"/*.pid "$RUN_DIR/munged.logstart" 2>/dev/null || true
	fi
	private_dir_down
	# No env file for a cluster that is not there (logs and configs stay).
	rm -f "$ENV_FILE" 2>/dev/null || true
	[[ -n $quiet ]] || msg "down: done (logs kept in $LOG_DIR)"
}

# ---------------------------------------------------------------- up

ensure_packages() {
	local missing=0 c
	for c in slurmctld slurmd srun sinfo munged munge unmunge ip nsenter unshare runuser useradd glusterd mount.glusterfs slurmdbd mariadbd; do
		command -v "$c" >/dev/null || missing=1
	done
	((missing)) || return 0
	local packages
	mapfile -t packages < <(packages_for cluster)
	msg "installing ${packages[*]} (apt)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${packages[@]}" >/dev/null
}

slurm_plugin_dir() {
	local f d
	f=$(dpkg -L slurm-wlm-basic-plugins 2>/dev/null | grep -m1 '/select_cons_tres\.so$' || true)
	if [[ -n $f ]]; then
		dirname "$f"
		return
	fi
	for d in /usr/lib/x86_64-linux-gnu/slurm-wlm /usr/lib/*/slurm-wlm /usr/lib/slurm-wlm /usr/lib64/slurm /usr/lib/slurm; do
		[[ -e $d/select_cons_tres.so ]] && { echo "$d"; return; }
	done
	die "cannot find Slurm's plugin directory (select_cons_tres.so)"
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

ensure_munge() {
	if munge_ok; then
		msg "munged already answering; not starting it"
		return 0
	fi
	if [[ ! -s /etc/munge/munge.key ]]; then
		msg "creating /etc/munge/munge.key"
		mkdir -p /etc/munge
		if command -v mungekey >/dev/null; then
			mungekey -c -f -k /etc/munge/munge.key
		else
			dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
		fi
		chmod 0400 /etc/munge/munge.key
	fi
	mkdir -p /run/munge /var/log/munge /var/lib/munge
	chown munge:munge /run/munge
	chmod 0755 /run/munge
	chown -R munge:munge /var/log/munge /var/lib/munge /etc/munge
	# A stale pid file or socket from a crashed munged makes it refuse to start.
	local old
	old=$(cat /run/munge/munged.pid 2>/dev/null || true)
	if [[ -n $old ]] && ! pid_alive "$old" munged; then
		rm -f /run/munge/munged.pid
	fi
	if ! pid_alive "$old" munged; then
		rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock 2>/dev/null || true
	fi
	msg "starting munged"
	wc -l </var/log/munge/munged.log >"$RUN_DIR/munged.logstart" 2>/dev/null || echo 0 >"$RUN_DIR/munged.logstart"
	runuser -u munge -- /usr/sbin/munged </dev/null >>"$LOG_DIR/munged.out" 2>&1
	local pid=
	for _ in $(seq 50); do
		munge_ok && break
		sleep 0.1
	done
	munge_ok || die "munged does not answer (munge -n | unmunge)"
	pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
	pid_alive "$pid" munged || die "munged answers but /run/munge/munged.pid ($pid) is not munged"
	echo "$pid" >"$RUN_DIR/munged.pid"
}

ensure_user() {
	local name=$1 uid=$2
	if ! id -u "$name" &>/dev/null; then
		if getent passwd "$uid" >/dev/null || getent group "$uid" >/dev/null; then
			msg "creating user $name (uid $uid taken, letting useradd choose)"
			useradd -m -s /bin/bash "$name"
		else
			msg "creating user $name (uid $uid)"
			useradd -m -u "$uid" -U -s /bin/bash "$name" 2>/dev/null ||
				useradd -m -u "$uid" -s /bin/bash "$name"
		fi
	fi
	local home
	home=$(getent passwd "$name" | cut -d: -f6)
	[[ -d $home ]] || { mkdir -p "$home" && chown "$name:" "$home"; }
}

prepare_scratch() {
	check_scratch_path
	if [[ -e $SCRATCH ]]; then
		[[ -d $SCRATCH ]] || die "$SCRATCH exists and is not a directory"
		if [[ ! -e $MARKER ]] && [[ -n $(ls -A "$SCRATCH") ]]; then
			die "$SCRATCH is not empty and was not made by cluster.sh (no $MARKER): refusing to wipe it"
		fi
		find "$SCRATCH" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
	fi
	mkdir -p "$SCRATCH"
	chmod 0755 "$SCRATCH"
	: >"$MARKER"
	mkdir -p "$RUN_DIR/daemon" "$LOG_DIR" "$SCRATCH/state" "$PLUGINS_DIR" "$SCRATCH/plugstack.conf.d"
	local n
	for n in "${NODES[@]}"; do mkdir -p "$SCRATCH/spool/$n"; done
	chmod 0755 "$PLUGINS_DIR" "$SCRATCH/plugstack.conf.d" "$LOG_DIR"
}

render() { # render TEMPLATE OUT
	local in=$TEMPLATES/$1 out=$2
	[[ -f $in ]] || die "missing template $in"
	sed -e "s|@SCRATCH@|$SCRATCH|g" \
		-e "s|@LOG_DIR@|$LOG_DIR|g" \
		-e "s|@PLUGIN_DIR@|$PLUGIN_DIR|g" \
		-e "s|@CTL_ADDR@|$CTL_ADDR|g" \
		-e "s|@NET@|$NET|g" \
		-e "s|@CLUSTER_NAME@|$CLUSTER_NAME|g" \
		-e "s|@CTL_PORT@|$CTL_PORT|g" \
		-e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
		-e "s|@NODE_CPUS@|$NODE_CPUS|g" \
		-e "s|@NODE_MEM@|$NODE_MEM|g" \
		-e "s|@DEBUG@|$DEBUG_LEVEL|g" \
		-e "s|@MIN_JOB_AGE@|${SPANK_MIN_JOB_AGE:-30}|g" \
		-e "s|@MAX_ARRAY_SIZE@|${SPANK_MAX_ARRAY_SIZE:-10001}|g" \
		-e "s|@MAX_JOB_COUNT@|${SPANK_MAX_JOB_COUNT:-20000}|g" \
		"$in" >"$out"
	if grep -n '@[A-Z_]*@' "$out" >&2; then die "unsubstituted variables in $out"; fi
	chmod 0644 "$out"
}

write_configs() {
	local plugin_dirs=("$@") d f b
	if [[ -n $ROOT ]]; then
		PLUGIN_DIR="$(rootfs_plugin_dir):$PLUGINS_DIR"
	else
		PLUGIN_DIR="$(slurm_plugin_dir):$PLUGINS_DIR"
	fi
	render slurm.conf.in "$SCRATCH/slurm.conf"
	render gres.conf.in "$SCRATCH/gres.conf"
	render cgroup.conf.in "$SCRATCH/cgroup.conf"
	# From 24.11 on slurmd can skip cgroups entirely (22.05 has no such setting).
	[[ -z $ROOT ]] || echo "CgroupPlugin=disabled" >>"$SCRATCH/cgroup.conf"
	if [[ -n $PLUGSTACK_FILE ]]; then
		cp "$PLUGSTACK_FILE" "$SCRATCH/plugstack.conf"
		chmod 0644 "$SCRATCH/plugstack.conf"
	else
		render plugstack.conf.in "$SCRATCH/plugstack.conf"
	fi
	shopt -s nullglob
	for d in "${plugin_dirs[@]}"; do
		local sos=("$d"/*.so) confs=("$d"/*.conf) debs=("$d"/*.deb)
		((${#sos[@]} + ${#confs[@]} + ${#debs[@]} > 0)) || msg "WARNING: --plugins $d has no *.so, *.conf or *.deb"
		((${#debs[@]} == 0)) || install_debs "${debs[@]}"
		for f in "${sos[@]}"; do
			b=$(basename "$f")
			install -m 0755 "$f" "$PLUGINS_DIR/"
			# cargo names a cdylib libNAME.so; admins write NAME.so in plugstack.conf.
			if [[ $b == lib?*.so && ! -e $PLUGINS_DIR/${b#lib} ]]; then
				ln -s "$b" "$PLUGINS_DIR/${b#lib}"
				msg "plugin: $b (also as ${b#lib})"
			else
				msg "plugin: $b"
			fi
		done
		# spank_frames.so runs its capture helper from its own directory (spank_frames(8)).
		if [[ -f $d/spank_frames-capture ]]; then
			install -m 0755 "$d/spank_frames-capture" "$PLUGINS_DIR/"
			msg "plugin helper: spank_frames-capture"
		fi
		# spank_qrmi's backend helper, looked for next to the plugin (in packages it is there).
		if [[ -f $d/spank-qrmi-backend ]]; then
			install -m 0755 "$d/spank-qrmi-backend" "$PLUGINS_DIR/"
			msg "plugin helper: spank-qrmi-backend"
		fi
		for f in "${confs[@]}"; do
			install -m 0644 "$f" "$SCRATCH/plugstack.conf.d/"
			msg "plugstack snippet: $(basename "$f")"
		done
	done
	shopt -u nullglob
}

# install_debs DEB...: plugins from their Debian packages (packaging/deb/build.sh). A release
# rootfs gets them installed for real, `dpkg -i` inside this instance's overlay (dependencies
# checked against that release's Slurm, maintainer scripts run; the cached rootfs is not
# written, `down` discards the overlay). The host's 22.05 is shared by every instance and by
# the machine itself, so there the packages are only unpacked (`dpkg-deb -x`) into
# SCRATCH/pkgroot; tests/package-test.sh installs them on the host for real. Either way every
# *.so the packages hold is linked into PLUGINS_DIR, pointing at the packaged file (which a
# rootfs's PluginDir also finds by itself), for tests that name SPANK_PLUGIN_DIR/NAME.so.
# spank_qrmi finds its helper (spank-qrmi-backend, in the same package directory) through
# that symlink, as it would through an admin's.
install_debs() {
	local deb so base=$SCRATCH/pkgroot
	if [[ -n $ROOT ]]; then
		mkdir -p "$ROOT/tmp/spank-debs"
		cp "$@" "$ROOT/tmp/spank-debs/"
		# shellcheck disable=SC2016 # expanded by the chroot's sh
		if ! chroot "$ROOT" sh -c 'dpkg -i /tmp/spank-debs/*.deb' >"$LOG_DIR/dpkg-install.log" 2>&1; then
			cat "$LOG_DIR/dpkg-install.log" >&2
			die "dpkg -i of $* in the $RELEASE rootfs failed"
		fi
		rm -rf "$ROOT/tmp/spank-debs"
		base=
		for deb in "$@"; do
			msg "installed in the $RELEASE rootfs: $(chroot "$ROOT" dpkg-query -W -f='${Package} ${Version} (${Status})' "$(dpkg-deb -f "$deb" Package)")"
		done
	else
		mkdir -p "$base"
		for deb in "$@"; do dpkg-deb -x "$deb" "$base"; done
		msg "packages unpacked (dpkg-deb -x) into $base: $(for deb in "$@"; do basename "$deb"; done | tr '\n' ' ')"
	fi
	for deb in "$@"; do
		while read -r so; do
			so=${so#.}
			ln -sfn "$base$so" "$PLUGINS_DIR/$(basename "$so")"
			msg "plugin: $(basename "$so") from $(dpkg-deb -f "$deb" Package) ($base$so)"
		done < <(dpkg-deb -c "$deb" | awk '$NF ~ /\.so$/ { print $NF }')
	done
}

net_up() {
	local n a
	ip link add "$BRIDGE" type bridge
	ip link set "$BRIDGE" type bridge forward_delay 0 stp_state 0 2>/dev/null || true
	ip addr add "$CTL_ADDR/$NET_CIDR" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	for n in "${NODES[@]}"; do
		a=${NODE_ADDR[$n]}
		ip netns add "$NS_PREFIX$n"
		ip link add "spk$ID-$n" type veth peer name "spkp$ID-$n"
		ip link set "spkp$ID-$n" netns "$NS_PREFIX$n"
		ip link set "spk$ID-$n" master "$BRIDGE"
		ip link set "spk$ID-$n" up
		ip -n "$NS_PREFIX$n" link set "spkp$ID-$n" name eth0
		ip -n "$NS_PREFIX$n" addr add "$a/$NET_CIDR" dev eth0
		ip -n "$NS_PREFIX$n" link set eth0 up
		ip -n "$NS_PREFIX$n" link set lo up
	done
}

# start_daemon NAME COMM CMD...: run in the background, detached, output to
# LOG_DIR/NAME.out, pid in RUN_DIR/NAME.pid (checked to really be COMM).
start_daemon() {
	local name=$1 comm=$2 pid
	shift 2
	setsid "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1 &
	pid=$!
	# nsenter, unshare and sh all exec, so $! becomes the daemon itself.
	for _ in $(seq 50); do
		[[ $(pid_comm "$pid") == "$comm" ]] && break
		[[ -d /proc/$pid ]] || break
		sleep 0.1
	done
	pid_alive "$pid" "$comm" || {
		msg "$name did not start (pid $pid, comm '$(pid_comm "$pid")')"
		return 1
	}
	echo "$pid" >"$RUN_DIR/$name.pid"
}

start_daemons() {
	local n
	start_daemon slurmctld slurmctld \
		unshare --uts sh -c "hostname $CTL_NAME && exec $IN_ROOT slurmctld -D -f '$CONF'"
	readlink "/proc/$(cat "$RUN_DIR/slurmctld.pid")/ns/uts" >"$RUN_DIR/slurmctld.uts"
	for n in "${NODES[@]}"; do
		start_daemon "slurmd-$n" slurmd \
			$(node_enter "$n") unshare --uts sh -c "hostname $n && exec $IN_ROOT slurmd -D -N $n -f '$CONF'"
	done
}

check_daemons_alive() {
	local f name
	for f in "$RUN_DIR"/slurm*.pid; do
		[[ -f $f ]] || continue
		name=$(basename "$f" .pid)
		pid_alive "$(cat "$f")" "${name%%-*}" || {
			msg "$name (pid $(cat "$f")) died"
			return 1
		}
	done
}

wait_idle() {
	local deadline=$((SECONDS + UP_TIMEOUT)) out n st ok
	while :; do
		check_daemons_alive || return 1
		out=$(SLURM_CONF=$CONF timeout 10 $IN_ROOT sinfo -h -N -o '%N %t' 2>/dev/null || true)
		ok=1
		for n in "${NODES[@]}"; do
			st=$(awk -v n="$n" '$1==n{print $2; exit}' <<<"$out")
			[[ $st == idle ]] || ok=0
			if [[ $st == drain* || $st == drng ]]; then
				msg "node $n is $st"
				return 1
			fi
		done
		((ok)) && return 0
		if ((SECONDS >= deadline)); then
			msg "timeout: nodes not all idle after ${UP_TIMEOUT}s; sinfo says:"
			printf '%s\n' "${out:-<no answer from slurmctld>}" >&2
			return 1
		fi
		sleep 0.5
	done
}

write_env() {
	cat >"$ENV_FILE" <<EOF
# Written by tests/cluster/cluster.sh up; source it to use the test cluster.
export SLURM_CONF=$CONF
export SPANK_CLUSTER_DIR=$SCRATCH
export SPANK_SHARED_DIR=$SHARED_DIR
export SPANK_LOG_DIR=$LOG_DIR
export SPANK_PLUGIN_DIR=$PLUGINS_DIR
export SPANK_TEST_USER=$TEST_USER
export SPANK_TEST_USER2=$TEST_USER2
export SPANK_BRIDGE_ADDR=$CTL_ADDR
export SPANK_CLUSTER_ID=$ID
export SPANK_CLUSTER_NAME=$CLUSTER_NAME
export SPANK_NODES="${NODES[*]}"
export SPANK_SLURM_RELEASE=$RELEASE
export SPANK_ROOT=$ROOT
$(private_dir_env)
EOF
	chmod 0644 "$ENV_FILE"
}

UP_DONE=0
on_up_exit() {
	local rc=$?
	((UP_DONE)) && return 0
	trap - EXIT INT TERM
	msg "up FAILED (exit $rc); daemon logs follow, then teardown"
	dump_logs 200 >&2 || true
	do_down quiet || true
	msg "torn down after failed up"
	exit $((rc == 0 ? 1 : rc))
}

cmd_up() {
	local plugin_dirs=() t0=$SECONDS new_release=22.05 private_dir=
	PLUGSTACK_FILE=
	while (($#)); do
		case $1 in
		--plugins)
			[[ $# -ge 2 ]] || die "--plugins needs a directory"
			[[ -d $2 ]] || die "--plugins $2: not a directory"
			plugin_dirs+=("$(cd "$2" && pwd)")
			shift 2
			;;
		--plugstack)
			[[ $# -ge 2 ]] || die "--plugstack needs a file"
			[[ -f $2 ]] || die "--plugstack $2: not a file"
			PLUGSTACK_FILE=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
			shift 2
			;;
		--release)
			[[ $# -ge 2 ]] || die "--release needs 22.05, 24.11 or 26.05"
			release_suite "$2" >/dev/null || die "--release '$2': expected 22.05 (host packages), 24.11 (Debian trixie) or 26.05 (Debian sid)"
			new_release=$2
			shift 2
			;;
		--backup-ctl)
			BACKUP_CTL=1
			shift
			;;
		--private-dir)
			[[ $# -ge 2 ]] || die "--private-dir needs a path"
			private_dir=$2
			shift 2
			;;
		--no-gluster)
			GLUSTER=0
			shift
			;;
		--no-accounting)
			ACCOUNTING=0
			shift
			;;
		-h | --help) usage ;;
		*) die "up: unknown argument '$1'" ;;
		esac
	done
	need_root
	check_scratch_path
	ensure_packages

	# Leftovers of a previous run (crash, or a cluster still up).
	msg "cleaning up whatever a previous run left"
	do_down quiet

	trap on_up_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	# The previous run was torn down as its own release; now ours.
	set_release "$new_release"
	prepare_scratch
	ensure_user "$TEST_USER" "$TEST_UID"
	ensure_user "$TEST_USER2" "$TEST_UID2"
	if [[ -n $ROOT ]]; then
		rootfs_up
		rootfs_user "$TEST_USER"
		rootfs_user "$TEST_USER2"
	else
		ensure_munge
	fi
	[[ -z $private_dir ]] || private_dir_set "$private_dir"
	mkdir -p "$SHARED_DIR"
	chown "$TEST_USER:" "$SHARED_DIR"
	chmod 1777 "$SHARED_DIR"

	write_configs "${plugin_dirs[@]}"
	backup_ctl_conf
	# Clients run as the test user read slurm.conf and plugstack.conf.
	$IN_ROOT runuser -u "$TEST_USER" -- test -r "$CONF" -a -r "$SCRATCH/plugstack.conf" -a -w "$SHARED_DIR" ||
		die "$TEST_USER cannot read $CONF / write $SHARED_DIR: is every parent of $SCRATCH world-searchable?"
	net_up
	storage_up
	accounting_up
	start_daemons
	backup_ctl_start
	msg "waiting (max ${UP_TIMEOUT}s) for nodes ${NODES[*]} to be idle"
	wait_idle
	write_env
	storage_env
	backup_ctl_env
	accounting_env
	UP_DONE=1
	trap - EXIT INT TERM
	SLURM_CONF=$CONF $IN_ROOT sinfo >&2
	msg "up: Slurm $RELEASE cluster ready in $((SECONDS - t0))s; source $ENV_FILE"
}

cmd_down() {
	need_root
	check_scratch_path
	local t0=$SECONDS
	do_down
	msg "down took $((SECONDS - t0))s"
}

cmd_status() {
	local f name p st rc=0
	if [[ ! -f $CONF ]]; then
		echo "no cluster configured in $SCRATCH"
		return 1
	fi
	echo "cluster dir: $SCRATCH"
	for f in "$RUN_DIR"/*.pid; do
		[[ -f $f ]] || continue
		name=$(basename "$f" .pid)
		p=$(cat "$f")
		case $name in slurmd-*) st=slurmd ;; slurmctld-*) st=slurmctld ;; munged-*) st=munged ;; *) st=$name ;; esac
		if pid_alive "$p" "$st"; then echo "  $name: pid $p alive"; else
			echo "  $name: pid $p DEAD"
			rc=1
		fi
	done
	echo "namespaces: $(ip netns list 2>/dev/null | awk '{print $1}' | tr '\n' ' ')"
	echo "release: $RELEASE${ROOT:+ (rootfs $ROOT)}"
	if ! SLURM_CONF=$CONF timeout 10 $IN_ROOT sinfo; then
		echo "sinfo failed"
		rc=1
	fi
	SLURM_CONF=$CONF timeout 10 $IN_ROOT squeue 2>/dev/null || true
	return $rc
}

cmd_as_user() {
	local user=$TEST_USER
	if [[ ${1:-} == --user ]]; then
		user=${2:?--user needs a name}
		shift 2
	fi
	(($#)) || die "as-user: no command"
	[[ -f $ENV_FILE ]] || die "no $ENV_FILE: is the cluster up?"
	local home
	home=$(getent passwd "$user" | cut -d: -f6)
	# Run from the shared directory: the caller's cwd may not be readable by the user.
	# (chroot changes to / itself: the inner bash changes dir again.)
	cd "$SHARED_DIR"
	# shellcheck disable=SC2016 # expanded by the inner bash
	exec $IN_ROOT runuser -u "$user" -- env HOME="$home" USER="$user" LOGNAME="$user" \
		bash -c 'cd "$1" && source "$0" && shift && exec "$@"' "$ENV_FILE" "$SHARED_DIR" "$@"
}

# kill-node NODE: a node crash: SIGKILL to every process in NODE's network namespace
# (slurmd, slurmstepd, job processes), found by namespace identity.
cmd_kill_node() {
	need_root
	local n=${1:-} ino p link pids=()
	[[ -n $n && -e /run/netns/$NS_PREFIX$n ]] || die "kill-node: no node '$n' (nodes: ${NODES[*]})"
	ino=$(stat -L -c %i "/run/netns/$NS_PREFIX$n")
	for p in /proc/[0-9]*; do
		link=$(readlink "$p/ns/net" 2>/dev/null) || continue
		[[ $link == "net:[$ino]" ]] && pids+=("${p#/proc/}")
	done
	((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null
	# SIGKILL is delivered, not done: wait until they have exited, so that start-node sees
	# them gone (its munged, its GlusterFS client) and never a dying one as alive.
	local deadline=$((SECONDS + 10)) left
	while ((SECONDS < deadline)); do
		left=0
		for p in "${pids[@]}"; do running "$p" && left=1 && break; done
		((left)) || break
		sleep 0.05
	done
	# Its FUSE client is gone with it: start-node mounts the shared dir again (a stat of the
	# dead mount can still be answered from the kernel's attribute cache for a second).
	: >"$NODE_NS_DIR/$n.killed"
	msg "kill-node $n: killed ${#pids[@]} processes"
	rm -f "$RUN_DIR/slurmd-$n.pid"
}

# start-node NODE: start NODE's slurmd again after kill-node and return it to service.
cmd_start_node() {
	need_root
	local n=${1:-}
	[[ -n $n && -e /run/netns/$NS_PREFIX$n ]] || die "start-node: no node '$n' (nodes: ${NODES[*]})"
	node_up "$n"
	start_daemon "slurmd-$n" slurmd \
		$(node_enter "$n") unshare --uts sh -c "hostname $n && exec $IN_ROOT slurmd -D -N $n -f '$CONF'"
	SLURM_CONF=$CONF $IN_ROOT scontrol update nodename="$n" state=resume 2>/dev/null || true
	msg "start-node $n: slurmd pid $(cat "$RUN_DIR/slurmd-$n.pid")"
}

# shellcheck source=../packages.sh
source "$HERE/../packages.sh"
# shellcheck source=rootfs.sh
source "$HERE/rootfs.sh"
# shellcheck source=backup-ctl.sh
source "$HERE/backup-ctl.sh"
# shellcheck source=private-dir.sh
source "$HERE/private-dir.sh"
# shellcheck source=storage.sh
source "$HERE/storage.sh"
# shellcheck source=accounting.sh
source "$HERE/accounting.sh"
load_release

main() {
	local cmd=${1:-}
	(($#)) && shift
	case $cmd in
	up) cmd_up "$@" ;;
	down) cmd_down ;;
	status) cmd_status ;;
	logs) dump_logs ;;
	dir) echo "$SCRATCH" ;;
	as-user) cmd_as_user "$@" ;;
	kill-node) cmd_kill_node "$@" ;;
	start-node) cmd_start_node "$@" ;;
	stop-ctl) cmd_stop_ctl "$@" ;;
	start-ctl) cmd_start_ctl ;;
	-h | --help | help | "") usage ;;
	*) die "unknown command '$cmd'" ;;
	esac
}

main "$@"
