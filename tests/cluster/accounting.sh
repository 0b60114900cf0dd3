# shellcheck shell=bash
# Sourced by cluster.sh: Slurm accounting as the sites run it, slurmdbd over a real MariaDB
# server, on by default (`cluster.sh up --no-accounting` leaves it out: AccountingStorageType
# stays accounting_storage/none, as for the benchmarks' baseline).
#
# MariaDB: the host's mariadbd for every release (a 24.11/26.05 slurmdbd, chrooted in the
# release rootfs, shares the host's network and reaches it by TCP on 127.0.0.1), run as the
# mysql user with its own datadir, socket and pid file under SCRATCH/mariadb, its own port
# (6820+100*ID, loopback only) and no option file (--no-defaults): the machine's own MariaDB,
# /etc/mysql and /var/lib/mysql are never used. `mariadb-install-db` takes seconds, so it runs
# once per mariadbd version into ${SPANK_MARIADB_CACHE:-/var/cache/spank-mariadb}/VERSION
# (with the `slurm` database user and its random password), and each `up` copies that datadir.
#
# slurmdbd: the release's own (host package on 22.05, the rootfs's from 24.11), in a UTS
# namespace of its own (hostname `dbd`, its DbdHost), port 6819+100*ID, slurmdbd.conf (0600)
# beside slurm.conf, where Slurm looks for it. Before slurmctld starts, the cluster is
# registered with sacctmgr, an account `spank` made, and the test users added to it;
# slurm.conf gets AccountingStorageType=accounting_storage/slurmdbd and
# AccountingStorageTRES=gres/qpu (QPU use in sacct and sreport).
#
# `down` stops slurmdbd (after slurmctld, which flushes its records to it) and mariadbd by
# their PIDs and removes SCRATCH/mariadb.
# Uses: ID, SCRATCH, RUN_DIR, LOG_DIR, CONF, CTL_ADDR, CLUSTER_NAME, TEST_USER(2), IN_ROOT,
# ROOT, RELEASE, msg, die, pid_alive, stop_pids, start_daemon, STOP_TIMEOUT (cluster.sh).

ACCOUNTING=1
DB_DIR=$SCRATCH/mariadb
DB_PORT=${SPANK_MARIADB_PORT:-$((6820 + 100 * ID))}
DBD_PORT=${SPANK_DBD_PORT:-$((6819 + 100 * ID))}
DBD_NAME=dbd
DB_CACHE=${SPANK_MARIADB_CACHE:-/var/cache/spank-mariadb}
DBD_CONF=$SCRATCH/slurmdbd.conf

# mariadbd's options: small and fast (a test database; durability across a machine crash is
# not needed), never an option file.
mariadb_opts() {
	echo --no-defaults --user=mysql --datadir="$1" --skip-log-bin --skip-name-resolve \
		--performance-schema=OFF --innodb-buffer-pool-size=32M --innodb-log-file-size=8M \
		--innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --innodb-use-native-aio=0 \
		--innodb-lock-wait-timeout=900 --innodb-buffer-pool-load-at-startup=0 \
		--innodb-buffer-pool-dump-at-shutdown=0 --max-connections=64
}

# The cached datadir of this machine's mariadbd (made once, under a lock); prints its path.
mariadb_cache() {
	local ver dir tmp pid pass
	ver=$(mariadbd --version 2>/dev/null | awk '{print $3}') || true
	[[ -n $ver ]] || die "mariadbd not found (apt-get install mariadb-server)"
	dir=$DB_CACHE/$ver
	mkdir -p "$DB_CACHE"
	chmod 0755 "$DB_CACHE"
	exec {dblock}>"$DB_CACHE/.lock"
	flock "$dblock"
	if [[ ! -f $dir/.ready ]]; then
		msg "MariaDB $ver: initialising a datadir once into $dir"
		rm -rf "$dir.new"
		mkdir -p "$dir.new/data"
		chown mysql: "$dir.new/data"
		if ! mariadb-install-db --no-defaults --user=mysql --datadir="$dir.new/data" --skip-test-db \
			--auth-root-authentication-method=socket >"$DB_CACHE/install-db.log" 2>&1; then
			cat "$DB_CACHE/install-db.log" >&2
			die "mariadb-install-db failed"
		fi
		# The slurm user (TCP, password) for slurmdbd: made with a mariadbd on a private socket.
		pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
		tmp=$dir.new/init
		mkdir -p "$tmp"
		chown mysql: "$tmp"
		# shellcheck disable=SC2046 # options are words
		setsid mariadbd $(mariadb_opts "$dir.new/data") --skip-networking --socket="$tmp/sock" \
			--pid-file="$tmp/pid" --log-error="$DB_CACHE/init.log" </dev/null >/dev/null 2>&1 &
		pid=$!
		for _ in $(seq 100); do
			mariadb --no-defaults -S "$tmp/sock" -u root -e 'select 1' &>/dev/null && break
			sleep 0.1
		done
		mariadb --no-defaults -S "$tmp/sock" -u root -e "
			CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
			GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
			FLUSH PRIVILEGES;" || { kill "$pid"; die "cannot create the slurm database user (log $DB_CACHE/init.log)"; }
		mariadb-admin --no-defaults -S "$tmp/sock" -u root shutdown
		wait "$pid" 2>/dev/null || true
		rm -rf "$tmp"
		(umask 077 && echo "$pass" >"$dir.new/slurm.pass")
		: >"$dir.new/.ready"
		rm -rf "$dir"
		mv "$dir.new" "$dir"
	fi
	exec {dblock}>&-
	echo "$dir"
}

db_ok() { mariadb --no-defaults -S "$DB_DIR/mysqld.sock" -u root -e 'select 1' &>/dev/null; }

# slurm.conf: accounting through slurmdbd, QPU use counted.
accounting_conf() {
	sed -i -e "s|^AccountingStorageType=.*|AccountingStorageType=accounting_storage/slurmdbd|" "$CONF"
	cat >>"$CONF" <<EOF

# Accounting (tests/cluster/accounting.sh): slurmdbd over MariaDB, QPU use counted.
AccountingStorageHost=$CTL_ADDR
AccountingStoragePort=$DBD_PORT
AccountingStorageTRES=gres/qpu
EOF
	grep -q '^AccountingStorageType=accounting_storage/slurmdbd$' "$CONF" || die "could not set AccountingStorageType in $CONF"
}

# db_start DATADIR: mariadbd on a copy of DATADIR (SCRATCH/mariadb/data), answering.
db_start() {
	rm -rf "$DB_DIR"
	mkdir -p "$DB_DIR"
	cp -a "$1" "$DB_DIR/data"
	chown mysql: "$DB_DIR"
	# mariadbd runs as mysql: its log file is made for it in the (root's) log dir.
	install -o mysql -m 0644 /dev/null "$LOG_DIR/mariadbd.log"
	# shellcheck disable=SC2046 # options are words
	start_daemon mariadbd mariadbd mariadbd $(mariadb_opts "$DB_DIR/data") \
		--bind-address=127.0.0.1 --port="$DB_PORT" --socket="$DB_DIR/mysqld.sock" \
		--pid-file="$DB_DIR/mariadbd.pid" --log-error="$LOG_DIR/mariadbd.log"
	for _ in $(seq 150); do
		db_ok && break
		pid_alive "$(cat "$RUN_DIR/mariadbd.pid")" mariadbd || break
		sleep 0.1
	done
	db_ok || die "mariadbd does not answer on $DB_DIR/mysqld.sock (log $LOG_DIR/mariadbd.log)"
}

# dbd_start: slurmdbd, answering sacctmgr.
dbd_start() {
	# slurmdbd reads slurmdbd.conf from slurm.conf's directory (SLURM_CONF).
	start_daemon slurmdbd slurmdbd \
		unshare --uts sh -c "hostname $DBD_NAME && exec env SLURM_CONF='$CONF' $IN_ROOT slurmdbd -D"
	for _ in $(seq 600); do
		SLURM_CONF=$CONF timeout 5 $IN_ROOT sacctmgr -n list cluster &>/dev/null && return 0
		pid_alive "$(cat "$RUN_DIR/slurmdbd.pid")" slurmdbd || die "slurmdbd died (log $LOG_DIR/slurmdbd.log)"
		sleep 0.1
	done
	die "slurmdbd does not answer sacctmgr after 60 s (log $LOG_DIR/slurmdbd.log)"
}

_sacctmgr() {
	SLURM_CONF=$CONF timeout 30 $IN_ROOT sacctmgr -i "$@" >>"$LOG_DIR/sacctmgr.out" 2>&1 ||
		die "sacctmgr $* failed ($(tail -n 3 "$LOG_DIR/sacctmgr.out"))"
}

# A database with slurmdbd's tables, this cluster and its users registered, kept per mariadbd
# version, Slurm version and cluster name (DB_CACHE/VERSION/KEY): made once (slurmdbd creating
# its schema and sacctmgr registering take seconds), then copied by every `up`. Sets DB_DATA.
db_registered_cache() {
	local base=$1 key dir slurm_ver
	if [[ -n $ROOT ]]; then
		slurm_ver=$(cat "$ROOT/.spank-slurm-version" 2>/dev/null || echo "$RELEASE")
	else
		slurm_ver=$(dpkg-query -W -f='${Version}' slurmdbd 2>/dev/null || echo "$RELEASE")
	fi
	key=$slurm_ver-$CLUSTER_NAME
	dir=$base/$key
	exec {dblock}>"$DB_CACHE/.lock"
	flock "$dblock"
	if [[ ! -f $dir/.ready ]]; then
		msg "accounting: slurmdbd schema and registrations for $key, once, into $dir"
		db_start "$base/data"
		dbd_start
		_sacctmgr add cluster "$CLUSTER_NAME"
		_sacctmgr add account spank Cluster="$CLUSTER_NAME" Description=tests Organization=spank
		_sacctmgr add user "$TEST_USER,$TEST_USER2" Account=spank Cluster="$CLUSTER_NAME"
		stop_pids "$STOP_TIMEOUT" "$(cat "$RUN_DIR/slurmdbd.pid")"
		mariadb-admin --no-defaults -S "$DB_DIR/mysqld.sock" -u root shutdown ||
			die "mariadb-admin shutdown failed"
		stop_pids "$STOP_TIMEOUT" "$(cat "$RUN_DIR/mariadbd.pid")"
		rm -f "$RUN_DIR/slurmdbd.pid" "$RUN_DIR/mariadbd.pid"
		rm -rf "$dir.new"
		mkdir -p "$dir.new"
		cp -a "$DB_DIR/data" "$dir.new/data"
		: >"$dir.new/.ready"
		rm -rf "$dir"
		mv "$dir.new" "$dir"
	fi
	exec {dblock}>&-
	DB_DATA=$dir/data
}

# Part of `up`, after the configs are written and before slurmctld starts.
accounting_up() {
	((ACCOUNTING)) || return 0
	local base t0=$EPOCHREALTIME
	command -v mariadbd >/dev/null || die "accounting: mariadbd missing (apt-get install mariadb-server; or up --no-accounting)"
	[[ -z $ROOT ]] || [[ -x $ROOT/usr/sbin/slurmdbd ]] || die "accounting: no slurmdbd in the $RELEASE rootfs (tests/packages.sh lists it: the cached rootfs is rebuilt when its stamp differs)"
	[[ -n $ROOT ]] || command -v slurmdbd >/dev/null || die "accounting: slurmdbd missing (apt-get install slurmdbd; or up --no-accounting)"
	base=$(mariadb_cache)
	(
		umask 077
		cat >"$DBD_CONF" <<EOF
# Written by tests/cluster/accounting.sh for cluster $ID.
AuthType=auth/munge
DbdHost=$DBD_NAME
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=${SPANK_SLURM_DEBUG:-info}
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$RUN_DIR/daemon/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$base/slurm.pass")
StorageLoc=slurm_acct_db
EOF
	)
	accounting_conf
	# Not in a subshell: the daemons it starts and stops are reaped by this shell.
	db_registered_cache "$base"
	db_start "$DB_DATA"
	dbd_start
	msg "accounting: mariadbd $(cat "$RUN_DIR/mariadbd.pid") (127.0.0.1:$DB_PORT), slurmdbd $(cat "$RUN_DIR/slurmdbd.pid") (:$DBD_PORT), cluster $CLUSTER_NAME, in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') s"
}

# Our slurmdbd and mariadbd when their pid files are gone: found through /proc by their
# configuration (slurmdbd's SLURM_CONF, mariadbd's datadir).
accounting_stray_pids() {
	local p c
	for p in /proc/[0-9]*; do
		c=$(cat "$p/comm" 2>/dev/null) || continue
		case $c in
		slurmdbd) tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$CONF" && echo "${p#/proc/}" ;;
		mariadbd) tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "--datadir=$DB_DIR/data " && echo "${p#/proc/}" ;;
		esac
	done
	return 0
}

# Part of `down`, after slurmctld stopped: slurmdbd and mariadbd, then their state.
accounting_down() {
	local name p pids=()
	for name in slurmdbd mariadbd; do
		p=$(cat "$RUN_DIR/$name.pid" 2>/dev/null || true)
		pid_alive "$p" "$name" && pids+=("$p")
		rm -f "$RUN_DIR/$name.pid"
	done
	while read -r p; do [[ -n $p && " ${pids[*]} " != *" $p "* ]] && pids+=("$p"); done < <(accounting_stray_pids)
	if ((${#pids[@]})); then
		msg "stopping slurmdbd and mariadbd: $(for p in "${pids[@]}"; do printf '%s(%s) ' "$p" "$(pid_comm "$p")"; done)"
		# slurmctld has stopped (its records are sent) and the database is removed next:
		# neither needs to flush anything first. Both at once: one wait for their reaping.
		kill -KILL "${pids[@]}" 2>/dev/null || true
		stop_pids "$STOP_TIMEOUT" "${pids[@]}"
	fi
	rm -rf "$DB_DIR" "$DBD_CONF"
}

# cluster.env: whether sacct has answers.
accounting_env() {
	echo "export SPANK_ACCOUNTING=$ACCOUNTING" >>"$ENV_FILE"
}
