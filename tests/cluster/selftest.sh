#!/usr/bin/env bash
# shellcheck disable=SC2016 # job scripts are expanded on the nodes
# Self-test of the test cluster: `up`, real jobs as the unprivileged test
# user, `down`, and checks that nothing is left behind. Run as root:
#
#   tests/cluster/selftest.sh [cluster.sh up options, e.g. --plugins DIR, --release 24.11]
#
# Set SELFTEST_KEEP=1 to leave the cluster up afterwards (no teardown checks).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
C=$HERE/cluster.sh
PASS=0
FAIL=0

ok() { PASS=$((PASS + 1)); printf 'ok   %s\n' "$1"; }
bad() { FAIL=$((FAIL + 1)); printf 'FAIL %s\n' "$1"; [[ -n ${2:-} ]] && printf '     %s\n' "$2"; }
# check NAME EXPECTED ACTUAL
check() { if [[ $2 == "$3" ]]; then ok "$1"; else bad "$1" "expected [$2] got [$3]"; fi; }
u() { "$C" as-user "$@"; }
u2() { "$C" as-user --user spanktest2 "$@"; }
sorted() { sort | tr '\n' ' ' | sed 's/ $//'; }

# running PID: exists and is not a zombie (detached daemons are reaped by pid 1, late)
running() { local st; st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; st=${st##*) }; [[ ${st%% *} != Z ]]; }

t0=$EPOCHREALTIME
if ! "$C" up "$@"; then
	echo "selftest: up failed"
	echo "selftest: 0 passed, 1 failed"
	exit 1
fi
t1=$EPOCHREALTIME
printf 'up took %.1fs\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
# shellcheck disable=SC1091
source "${SPANK_CLUSTER_DIR:-$(bash "$C" dir)}/cluster.env"
S=$SPANK_SHARED_DIR

check "srun -N4 -p all: one hostname per node" "c1 c2 q1 q2" "$(u srun -N4 -p all hostname | sorted)"
check "srun -N2 -p normal" "c1 c2" "$(u srun -N2 -p normal hostname | sorted)"
check "srun -N2 default partition is quantum" "q1 q2" "$(u srun -N2 hostname | sorted)"
check "job runs as spanktest, not root" "spanktest" "$(u srun -p normal id -un)"
check "spanktest2 can run jobs" "spanktest2" "$(u2 srun -p normal id -un)"

u sbatch -Q --wait -p normal -N2 -J st-batch -o "$S/st-batch-%j.out" \
	--wrap 'echo "batch on $(hostname) as $(id -un)"; srun hostname 2>/dev/null | sort' >/dev/null
out=$(cat "$S"/st-batch-*.out 2>/dev/null)
check "sbatch --wrap output in the shared dir" "batch on c1 as spanktest|c1|c2" "$(tr '\n' '|' <<<"$out" | sed 's/|$//')"

check "salloc -N2 -p normal srun hostname" "c1 c2" "$(u salloc -Q -N2 -p normal srun hostname 2>/dev/null | sorted)"

u sbatch -Q --wait --array=0-9 -p all -o "$S/st-arr-%A_%a.out" --wrap 'echo $SLURM_ARRAY_TASK_ID $(hostname)' >/dev/null
check "sbatch --array=0-9: ten outputs" "10" "$(cat "$S"/st-arr-*.out 2>/dev/null | wc -l)"
check "array tasks spread over nodes" "yes" "$( (($(awk '{print $2}' "$S"/st-arr-*.out | sort -u | wc -l) > 1)) && echo yes || echo no)"

check "--gres=qpu:ibm_torino:1 lands on q1" "q1" "$(u srun --gres=qpu:ibm_torino:1 hostname)"
check "--gres=qpu:fresnel:1 lands on q2" "q2" "$(u srun --gres=qpu:fresnel:1 hostname)"
check "-p all --gres=qpu:fresnel:1 lands on q2" "q2" "$(u srun -p all --gres=qpu:fresnel:1 hostname)"
if u srun --gres=qpu:nosuch:1 hostname >/dev/null 2>&1; then bad "--gres=qpu:nosuch:1 refused"; else ok "--gres=qpu:nosuch:1 refused"; fi

# Plugins given with --plugins: srun loaded them (it reads plugstack.conf too).
if [[ " $* " == *" --plugins "* ]]; then
	check "plugstack.conf.d has the snippets" "yes" "$([[ -n $(ls "$SPANK_CLUSTER_DIR/plugstack.conf.d") ]] && echo yes || echo no)"
fi

# Each node its own munged (socket in its own mount namespace, one key): a credential made by
# the host's munged decodes on c1 and on c2, and a second decode on c1 is a replay there only.
sock_ino() { u srun -w "$1" -p all stat -L -c %i /run/munge/munge.socket.2 2>/dev/null; }
check "each node's /run/munge/munge.socket.2 is its own" \
	"$(stat -L -c %i "$SPANK_MUNGE_DIR/c1/munge.socket.2") $(stat -L -c %i "$SPANK_MUNGE_DIR/c2/munge.socket.2")" \
	"$(sock_ino c1) $(sock_ino c2)"
cred=$(u munge -n 2>/dev/null)
unm() { u srun -w "$1" -p all sh -c 'unmunge >/dev/null 2>&1 && echo decoded || echo rejected' <<<"$cred"; }
check "a credential decodes on c1, is a replay on c1, decodes on c2" "decoded rejected decoded" "$(unm c1) $(unm c1) $(unm c2)"

# fstype <mountinfo...: the type of the mount at the shared dir, one a line
fstype() { awk -v m="$S" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' | tr '\n' ' ' | sed 's/ $//'; }
if [[ ${SPANK_SHARED_FS:-} == glusterfs ]]; then
	check "shared dir is GlusterFS on c1, c2 and the host" "fuse.glusterfs fuse.glusterfs fuse.glusterfs" \
		"$(for w in c1 c2; do u srun -w $w -p normal cat /proc/self/mountinfo; done | fstype) $(fstype </proc/self/mountinfo)"
	# A FUSE mount has its own device number per client: a mount shared by namespaces has one.
	devs="$(u srun -w c1 -p normal stat -c %d "$S") $(u srun -w c2 -p normal stat -c %d "$S") $(stat -c %d "$S")"
	check "c1, c2 and the host each mount it with their own client" "3" "$(tr ' ' '\n' <<<"$devs" | sort -u | wc -l)"
	u srun -w c1 -p normal sh -c 'echo "written on $(hostname)" >st-gl-c1.txt'
	check "a file written on c1 is read on c2" "written on c1" "$(u srun -w c2 -p normal cat st-gl-c1.txt 2>&1)"
	# c2 looks the name up first (a cached negative entry must not hide it), c1 writes 4 MiB
	# under a temporary name and renames it, c2 reads it whole.
	u srun -w c2 -p normal sh -c 'test ! -e st-gl-big'
	want=$(u srun -w c1 -p normal sh -c 'head -c 4194304 /dev/urandom >.st-gl-big.tmp && md5sum <.st-gl-big.tmp && mv .st-gl-big.tmp st-gl-big')
	check "a rename on c1 is seen whole on c2" "$want" "$(u srun -w c2 -p normal sh -c 'md5sum <st-gl-big')"
	check "the host reads it whole too" "$want" "$(md5sum <"$S/st-gl-big")"
	# A node crash right after its client was used: the dead mount still answers stat from the
	# kernel's attribute cache for a second, and start-node must mount it again all the same
	# (it did not: the next job on c2 found "Transport endpoint is not connected").
	u srun -w c2 -p normal stat -t . >/dev/null
	"$C" kill-node c2 >/dev/null && "$C" start-node c2 >/dev/null
	sleep 1.5
	check "after a crash of c2 (kill-node, start-node), c2 reads the shared dir again" "written on c1" \
		"$(u srun -w c2 -p normal cat st-gl-c1.txt 2>&1)"
fi

# --private-dir PATH: a file c1 writes at PATH is seen neither by c2 nor by the host.
if [[ -n ${SPANK_PRIVATE_DIR:-} ]]; then
	u srun -p normal -w c1 touch "$SPANK_PRIVATE_DIR/st-c1" >/dev/null 2>&1
	check "--private-dir: c1's file on c1 only" "c1:yes c2:no host:no" \
		"c1:$(u srun -p normal -w c1 sh -c "test -e $SPANK_PRIVATE_DIR/st-c1 && echo yes || echo no") c2:$(u srun -p normal -w c2 sh -c "test -e $SPANK_PRIVATE_DIR/st-c1 && echo yes || echo no") host:$(u sh -c "test -e $SPANK_PRIVATE_DIR/st-c1 && echo yes || echo no")"
fi

# Accounting (accounting.sh): jobs reach slurmdbd a moment after they end, so sacct is polled.
# sacct_of JOB WANT: "State|NodeList|ExitCode|gres/qpu" of the job's allocation, polled (20 s)
# until it is WANT: slurmctld sends the records to slurmdbd a moment after the job ends, start
# and end separately (a job that ended at once may show one node briefly).
sacct_of() {
	local out i
	for i in $(seq 40); do
		out=$(u sacct -n -X -P -j "$1" --format=State,NodeList,ExitCode,AllocTRES 2>&1 |
			awk -F'|' '{ q = "none"; if (match($4, /gres\/qpu=[0-9]+/)) q = substr($4, RSTART, RLENGTH); print $1 "|" $2 "|" $3 "|" q }')
		[[ $out == "$2" ]] && break
		sleep 0.5
	done
	echo "$out"
}
if [[ ${SPANK_ACCOUNTING:-0} == 1 ]]; then
	j=$(u sbatch --parsable --wait -p normal -N2 -o /dev/null --wrap 'srun true')
	check "sacct: a 2-node batch job, its state and node list" "COMPLETED|c[1-2]|0:0|none" "$(sacct_of "$j" "COMPLETED|c[1-2]|0:0|none")"
	j=$(u sbatch --parsable --wait -p normal -w c2 -o /dev/null --wrap 'exit 3' 2>/dev/null)
	check "sacct: a failing job, FAILED on c2 with its exit code" "FAILED|c2|3:0|none" "$(sacct_of "$j" "FAILED|c2|3:0|none")"
	j=$(u sbatch --parsable --wait --gres=qpu:fresnel:1 -o /dev/null --wrap true)
	check "sacct: a QPU job counts gres/qpu (AccountingStorageTRES)" "COMPLETED|q2|0:0|gres/qpu=1" "$(sacct_of "$j" "COMPLETED|q2|0:0|gres/qpu=1")"
	check "sacctmgr: the test users in account spank" "$(printf 'spanktest|spank\nspanktest2|spank\n' | sorted)" \
		"$(u sacctmgr -n -P show assoc where account=spank format=User,Account | grep -v '^|' | sorted)"
else
	out=$(u sacct -n -j 1 2>&1)
	check "no accounting: sacct says so" "Slurm accounting storage is disabled" "$out"
fi

states=$(u sinfo -h -N -o '%t' | sort -u | tr '\n' ' ' | sed 's/ $//')
check "no node drained/down after the jobs" "idle" "$states"

if [[ -n ${SELFTEST_KEEP:-} ]]; then
	echo "SELFTEST_KEEP set: cluster left up"
	echo "selftest: $PASS passed, $FAIL failed"
	((FAIL == 0))
	exit
fi

# Everything this cluster runs: recorded daemons, all processes in the node
# namespaces and in the controller's UTS namespace.
ours=$(cat "$SPANK_CLUSTER_DIR"/run/*.pid 2>/dev/null)
nsp=$([[ ${SPANK_CLUSTER_ID:-0} == 0 ]] || echo "s$SPANK_CLUSTER_ID-")
for n in $SPANK_NODES; do ours+=" $(ip netns pids "$nsp$n" 2>/dev/null)"; done
ctl_uts=$(readlink "/proc/$(cat "$SPANK_CLUSTER_DIR/run/slurmctld.pid")/ns/uts")
for p in /proc/[0-9]*; do [[ $(readlink "$p/ns/uts" 2>/dev/null) == "$ctl_uts" ]] && ours+=" ${p#/proc/}"; done
our_munged=$(cat "$SPANK_CLUSTER_DIR/run/munged.pid" 2>/dev/null)
ours=$(for p in $ours; do running "$p" && echo "$p"; done | sort -un | tr '\n' ' ')
gl=$([[ ${SPANK_SHARED_FS:-} == glusterfs ]] && echo 1 || echo 0)
acct=$((${SPANK_ACCOUNTING:-0} == 1 ? 2 : 0))
check "cluster has slurmctld, slurmscriptd, 4 slurmd, 4 node munged (+munged, + glusterd and 4 clients, +slurmdbd and mariadbd)" \
	"$((10 + (${#our_munged} > 0) + 5 * gl + acct))" "$(wc -w <<<"$ours")"

t0=$EPOCHREALTIME
"$C" down || bad "down exited non-zero"
t1=$EPOCHREALTIME
printf 'down took %.1fs\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"

left=""
for p in $ours; do running "$p" && left+="$p($(cat "/proc/$p/comm" 2>/dev/null)) "; done
check "nothing we started still runs" "" "$left"
if [[ -n ${SPANK_ROOT:-} ]]; then
	check "no mount left under the rootfs base" "" "$(awk -v b="$(dirname "$SPANK_ROOT")" 'index($5, b) == 1 { print $5 }' /proc/self/mountinfo)"
	check "rootfs base removed" "no" "$([[ -e $(dirname "$SPANK_ROOT") ]] && echo yes || echo no)"
	check "nothing runs chrooted in the rootfs" "" "$(for p in /proc/[0-9]*; do [[ $(readlink "$p/root" 2>/dev/null) == "$SPANK_ROOT" ]] && echo "${p#/proc/}"; done)"
fi
check "no mariadbd runs on our datadir" "" "$(pgrep -af "mariadbd.*--datadir=$SPANK_CLUSTER_DIR/" | while read -r p _; do running "$p" && echo "$p"; done)"
check "no slurmdbd runs with our slurm.conf" "" "$(for p in $(pgrep -x slurmdbd); do tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$SPANK_CLUSTER_DIR/slurm.conf" && running "$p" && echo "$p"; done)"
check "accounting state removed (datadir, slurmdbd.conf)" "" "$(ls -d "$SPANK_CLUSTER_DIR/mariadb" "$SPANK_CLUSTER_DIR/slurmdbd.conf" 2>/dev/null)"
check "no slurm process runs with our slurm.conf" "" "$(pgrep -af "slurm.* -f $SPANK_CLUSTER_DIR/slurm.conf" | while read -r p _; do running "$p" && echo "$p"; done)"
id=${SPANK_CLUSTER_ID:-0}
if [[ $id == 0 ]]; then ns_re='c1|c2|q1|q2|fs'; else ns_re="s$id-(c1|c2|q1|q2|fs)"; fi
left_ns=$(ip netns list | awk '{print $1}' | grep -xE "$ns_re" | tr '\n' ' ')
check "node namespaces deleted" "" "$left_ns"
check "no mount left under the scratch dir" "" "$(awk -v d="$SPANK_CLUSTER_DIR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo)"
check "node mount namespaces gone" "no" "$([[ -e /run/spank-ns-$id ]] && echo yes || echo no)"
check "no GlusterFS process of ours" "" "$(pgrep -af "$SPANK_CLUSTER_DIR/(log/)?gluster|volfile-id[= ]/?spank$id[/.]" || true)"
check "GlusterFS state removed" "no" "$([[ -e $SPANK_CLUSTER_DIR/gluster ]] && echo yes || echo no)"
check "bridge deleted" "" "$(ip -o link show "spankbr$id" 2>/dev/null)"
check "veths deleted" "" "$(ip -o link show | grep -o "spk$id-[a-z0-9]*" | tr '\n' ' ')"
if [[ -n $our_munged ]]; then
	check "munged we started is stopped" "no" "$(running "$our_munged" && echo yes || echo no)"
else
	check "munged we did not start still answers" "yes" "$(munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && echo yes || echo no)"
fi
if "$C" down >/dev/null 2>&1; then ok "down is idempotent"; else bad "down is idempotent"; fi

echo "selftest: $PASS passed, $FAIL failed"
((FAIL == 0))
