# shellcheck shell=bash
# Sourced by cluster.sh: a backup slurmctld for controller-failover tests
# (`cluster.sh up --backup-ctl`), and stopping/starting the primary by PID
# (`cluster.sh stop-ctl [--kill]`, `cluster.sh start-ctl`).
#
# The backup `ctl2` shares StateSaveLocation with the primary `ctl` and binds the
# same port, so it lives in its own network namespace (address NET.2 on the bridge,
# like the nodes at NET.11-14) and its own UTS namespace (hostname ctl2; slurmctld
# insists that its hostname matches its SlurmctldHost line). It also gets its own
# mount namespace in which a private directory is bind-mounted over the directory
# of SlurmctldPidFile: both controllers read the same slurm.conf, and a slurmctld
# that finds a pid file locked by a running slurmctld kills that process at start,
# so with one shared pid file the backup would kill the primary. Its log goes to
# log/slurmctld-ctl2.log (slurmctld -L).
#
# Only for the host's Slurm (22.05); uses cluster.sh's variables and helpers.

BACKUP_CTL=0
BACKUP_NAME=ctl2
BACKUP_ADDR=$NET.2
BACKUP_NS=${NS_PREFIX}ctl2
BACKUP_VETH=spk$ID-ctl2
# Seconds without an answer from the controller in control before the other takes over.
BACKUP_TIMEOUT=${SPANK_SLURMCTLD_TIMEOUT:-5}

# slurm.conf: the backup as second SlurmctldHost line, and a short SlurmctldTimeout.
backup_ctl_conf() {
	((BACKUP_CTL)) || return 0
	[[ -z ${ROOT:-} ]] || die "--backup-ctl: only with the host's Slurm (22.05), not --release $RELEASE"
	[[ $BACKUP_TIMEOUT =~ ^[0-9]+$ ]] && ((BACKUP_TIMEOUT >= 3)) ||
		die "SPANK_SLURMCTLD_TIMEOUT must be a number of seconds >= 3 (got '$BACKUP_TIMEOUT')"
	grep -q '^SlurmctldHost=' "$CONF" || die "$CONF has no SlurmctldHost line"
	sed -i -e "0,/^SlurmctldHost=.*/s//&\nSlurmctldHost=$BACKUP_NAME($BACKUP_ADDR)/" \
		-e "s/^SlurmctldTimeout=.*/SlurmctldTimeout=$BACKUP_TIMEOUT/" "$CONF"
	grep -q "^SlurmctldTimeout=$BACKUP_TIMEOUT\$" "$CONF" || echo "SlurmctldTimeout=$BACKUP_TIMEOUT" >>"$CONF"
	[[ $(grep -c '^SlurmctldHost=' "$CONF") == 2 ]] || die "could not add the backup SlurmctldHost to $CONF"
	mkdir -p "$RUN_DIR/daemon-$BACKUP_NAME"
}

# The backup's namespace with a veth into the bridge (after net_up), then its slurmctld.
backup_ctl_start() {
	((BACKUP_CTL)) || return 0
	local pid_dir
	pid_dir=$(sed -n 's/^SlurmctldPidFile=//p' "$CONF")
	pid_dir=$(dirname "${pid_dir:-$RUN_DIR/daemon/slurmctld.pid}")
	ip netns add "$BACKUP_NS"
	ip link add "$BACKUP_VETH" type veth peer name "spkp$ID-ctl2"
	ip link set "spkp$ID-ctl2" netns "$BACKUP_NS"
	ip link set "$BACKUP_VETH" master "$BRIDGE"
	ip link set "$BACKUP_VETH" up
	ip -n "$BACKUP_NS" link set "spkp$ID-ctl2" name eth0
	ip -n "$BACKUP_NS" addr add "$BACKUP_ADDR/$NET_CIDR" dev eth0
	ip -n "$BACKUP_NS" link set eth0 up
	ip -n "$BACKUP_NS" link set lo up
	start_daemon "slurmctld-$BACKUP_NAME" slurmctld \
		nsenter --net="/run/netns/$BACKUP_NS" unshare --uts --mount --propagation private sh -c \
		"mount --bind '$RUN_DIR/daemon-$BACKUP_NAME' '$pid_dir' && $(storage_ctl2_mounts)hostname $BACKUP_NAME && exec slurmctld -D -L '$LOG_DIR/slurmctld-$BACKUP_NAME.log' -f '$CONF'"
	backup_ctl_wait_standby
}

# Until `scontrol ping` sees both controllers UP (the backup answers as standby).
backup_ctl_wait_standby() {
	local deadline=$((SECONDS + UP_TIMEOUT)) out
	while :; do
		out=$(SLURM_CONF=$CONF timeout 10 scontrol ping 2>&1 || true)
		[[ $(grep -c ' is UP' <<<"$out") == 2 ]] && return 0
		pid_alive "$(cat "$RUN_DIR/slurmctld-$BACKUP_NAME.pid" 2>/dev/null)" slurmctld || {
			msg "backup slurmctld died"
			return 1
		}
		if ((SECONDS >= deadline)); then
			msg "timeout: backup controller not UP after ${UP_TIMEOUT}s; scontrol ping says:"
			printf '%s\n' "$out" >&2
			return 1
		fi
		sleep 0.5
	done
}

backup_ctl_env() {
	((BACKUP_CTL)) || return 0
	cat >>"$ENV_FILE" <<EOF
export SPANK_BACKUP_CTL=$BACKUP_NAME
export SPANK_BACKUP_CTL_ADDR=$BACKUP_ADDR
export SPANK_SLURMCTLD_TIMEOUT=$BACKUP_TIMEOUT
EOF
}

# Part of `down` (after the slurm daemons were stopped): the backup's slurmctld if still
# there, whatever else runs in its network namespace (slurmscriptd), the namespace, the veth.
backup_ctl_down() {
	local p ino link pids=()
	p=$(cat "$RUN_DIR/slurmctld-$BACKUP_NAME.pid" 2>/dev/null || true)
	pid_alive "$p" slurmctld && pids+=("$p")
	if [[ -e /run/netns/$BACKUP_NS ]] && ino=$(stat -L -c %i "/run/netns/$BACKUP_NS" 2>/dev/null); then
		for p in /proc/[0-9]*; do
			link=$(readlink "$p/ns/net" 2>/dev/null) || continue
			[[ $link == "net:[$ino]" && " ${pids[*]} " != *" ${p#/proc/} "* ]] && pids+=("${p#/proc/}")
		done
	fi
	if ((${#pids[@]})); then
		msg "stopping backup controller processes: $(for p in "${pids[@]}"; do printf '%s(%s) ' "$p" "$(pid_comm "$p")"; done)"
		stop_pids "$STOP_TIMEOUT" "${pids[@]}"
	fi
	rm -f "$RUN_DIR/slurmctld-$BACKUP_NAME.pid"
	if [[ -e /run/netns/$BACKUP_NS ]]; then
		ip netns del "$BACKUP_NS" 2>/dev/null || true
		rm -f "/run/netns/$BACKUP_NS" 2>/dev/null || true
	fi
	if ip link show "$BACKUP_VETH" &>/dev/null; then ip link del "$BACKUP_VETH" 2>/dev/null || true; fi
	return 0
}

# stop-ctl [--kill]: stop the primary slurmctld by its recorded PID: SIGTERM (it saves its
# state and exits; the backup takes over after SlurmctldTimeout), or SIGKILL (a crash).
cmd_stop_ctl() {
	need_root
	local p kill=0
	case ${1:-} in
	--kill) kill=1 ;;
	"") ;;
	*) die "stop-ctl: unknown argument '$1' (expected --kill or nothing)" ;;
	esac
	p=$(cat "$RUN_DIR/slurmctld.pid" 2>/dev/null || true)
	pid_alive "$p" slurmctld || die "stop-ctl: the primary slurmctld is not running (pid file $RUN_DIR/slurmctld.pid: '$p')"
	if ((kill)); then
		kill -KILL "$p"
		local deadline=$((SECONDS + 5))
		while running "$p" && ((SECONDS < deadline)); do sleep 0.1; done
		await_reaped "$p"
	else
		stop_pids "$STOP_TIMEOUT" "$p"
	fi
	running "$p" && die "stop-ctl: slurmctld $p still runs"
	msg "stop-ctl: primary slurmctld $p stopped ($( ((kill)) && echo SIGKILL || echo SIGTERM))"
}

# start-ctl: start the primary slurmctld again (it asks a backup in control to hand back).
cmd_start_ctl() {
	need_root
	[[ -f $CONF ]] || die "start-ctl: no cluster configured in $SCRATCH"
	pid_alive "$(cat "$RUN_DIR/slurmctld.pid" 2>/dev/null)" slurmctld && die "start-ctl: the primary slurmctld already runs"
	start_daemon slurmctld slurmctld \
		unshare --uts sh -c "hostname $CTL_NAME && exec ${IN_ROOT:-} slurmctld -D -f '$CONF'"
	readlink "/proc/$(cat "$RUN_DIR/slurmctld.pid")/ns/uts" >"$RUN_DIR/slurmctld.uts"
	msg "start-ctl: primary slurmctld pid $(cat "$RUN_DIR/slurmctld.pid")"
}
