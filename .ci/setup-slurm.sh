#!/usr/bin/env bash
# Set up a real single-node Slurm cluster (Debian's slurm-wlm, 22.05 on Debian 12)
# with accounting (slurmdbd + MariaDB), for the tests of this project.
#
#   sudo .ci/setup-slurm.sh [USER ...]
#
# Runs as root, without systemd, cgroups or docker. Idempotent: it installs only
# what is missing, rewrites a config (and restarts the daemons reading it) only
# when its content changes, and starts munged, mariadbd, slurmdbd, slurmctld and
# slurmd only when they are not running. Each USER (default: $SUDO_USER, else
# root) is registered with the account `aiida` as default account. It ends by
# running a job as the first USER and waiting for COMPLETED in `sacct`.
#
# Environment: SLURM_CLUSTER_NAME (default localcluster),
#              SLURM_LOCAL_STATE (default /var/lib/slurm-local).
set -euo pipefail

CLUSTER=${SLURM_CLUSTER_NAME:-localcluster}
ACCOUNT=aiida
STATE=${SLURM_LOCAL_STATE:-/var/lib/slurm-local}
CONF_DIR=/etc/slurm
DB_NAME=slurm_acct_db
DB_USER=slurm
# A local, loopback-only database account of a throwaway test cluster.
DB_PASS=slurmdb-local
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server mariadb-client)

# Touched after each `apt-get update` by .ci/run and the .ci/setup-*.sh scripts.
APT_STAMP=/var/tmp/aiida-firecrest-ci.apt-updated

T0=$SECONDS
log() { printf '[setup-slurm %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() {
    printf '[setup-slurm] ERROR: %s\n' "$*" >&2
    exit 1
}
show_log() { # show_log FILE: print the tail of a daemon log, to explain a failure
    [ -f "$1" ] && { echo "---- last lines of $1:" >&2; tail -n 20 "$1" >&2; }
    return 0
}

# wait_for TIMEOUT_S DESCRIPTION CMD...: poll CMD until it succeeds, or fail.
wait_for() {
    local timeout=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "[setup-slurm] ERROR: timed out after ${timeout}s waiting for: $what" >&2
            return 1
        fi
        sleep 0.3
    done
}

# alive PID NAME: is PID a live (not zombie) process called NAME?
alive() {
    [[ $1 =~ ^[0-9]+$ ]] && [ -r "/proc/$1/stat" ] || return 1
    local stat
    stat=$(<"/proc/$1/stat") 2>/dev/null || return 1
    [[ $stat == "$1 ($2) "[^Z]* ]]
}
gone() { ! alive "$@"; }

# running NAME PIDFILE: is the process in PIDFILE alive and called NAME?
running() { [ -s "$2" ] && alive "$(<"$2")" "$1"; }

# stop NAME PIDFILE: SIGTERM the daemon and wait (bounded) until it is gone.
stop() {
    running "$1" "$2" || return 0
    local pid
    pid=$(<"$2")
    log "stopping $1 (its config changed)"
    kill "$pid" 2>/dev/null || true
    wait_for 30 "$1 (pid $pid) to exit" gone "$pid" "$1" || die "$1 does not stop"
}

# install_if_missing PKG...: apt-get install what is not installed yet, with the
# package scripts not starting any service (we start them ourselves below).
install_if_missing() {
    local missing=() p created_policy=0
    for p in "$@"; do
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == 'install ok installed' ]] || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    # apt-get update once: skip it if another step of this run did it (the stamp).
    if [ -z "$(find "$APT_STAMP" -mmin -60 2>/dev/null)" ]; then
        apt-get update -qq || die "apt-get update failed"
        touch "$APT_STAMP"
    fi
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        { ((created_policy)) && rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed"; }
    ((created_policy)) && rm -f /usr/sbin/policy-rc.d
    return 0
}

# write_if_changed PATH OWNER MODE: write stdin to PATH; return 0 if it changed.
write_if_changed() {
    local path=$1 owner=$2 mode=$3 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        chown "$owner" "$path"
        chmod "$mode" "$path"
        return 1
    fi
    install -o "${owner%%:*}" -g "${owner##*:}" -m "$mode" "$tmp" "$path"
    rm -f "$tmp"
    log "wrote $path"
    return 0
}

# ---------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 $*)"
USERS=("$@")
((${#USERS[@]})) || USERS=("${SUDO_USER:-root}")
for u in "${USERS[@]}"; do
    id -u "$u" >/dev/null 2>&1 || die "no such user: $u"
done

install_if_missing "${PACKAGES[@]}"
for c in munged mariadbd slurmdbd slurmctld slurmd sacctmgr sbatch sacct; do
    command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || die "$c not found after installing ${PACKAGES[*]}"
done

HOST=$(hostname -s 2>/dev/null || uname -n)
HOST=${HOST%%.*}
NCPU=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
REAL_MB=$((MEM_MB * 9 / 10)) # below what slurmd detects, or the node is drained
DEF_MEM=$((REAL_MB / NCPU / 2))
((DEF_MEM > 1024)) && DEF_MEM=1024

install -d -o slurm -g slurm -m 755 "$STATE" "$STATE/ctld" "$STATE/log" "$STATE/run"
install -d -o root -g root -m 755 "$STATE/d" "$CONF_DIR"

# ---- munge ----------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then mungekey --create --force; else create-munge-key -f; fi
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1 ||
        { show_log /var/log/munge/munged.log; die "munged failed to start"; }
    wait_for 20 "munge to answer" bash -c 'munge -n | unmunge' || die "munge does not work"
fi

# ---- MariaDB ---------------------------------------------------------------
install -d -o mysql -g mysql -m 755 /run/mysqld
if ! mysqladmin --connect-timeout=2 ping >/dev/null 2>&1; then
    if [ ! -d /var/lib/mysql/mysql ]; then
        log "initialising the MariaDB data directory"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/log/mariadb-install.log" 2>&1 ||
            { show_log "$STATE/log/mariadb-install.log"; die "mariadb-install-db failed"; }
    fi
    log "starting mariadbd"
    setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
        --pid-file=/run/mysqld/mysqld.pid </dev/null >>"$STATE/log/mariadbd.log" 2>&1 &
    mariadbd_pid=$!
    # Stop waiting as soon as MariaDB answers or mariadbd has exited (a start-up error).
    mariadb_up_or_dead() { mysqladmin --connect-timeout=2 ping || ! kill -0 "$mariadbd_pid"; }
    wait_for 60 "MariaDB to answer" mariadb_up_or_dead || true
    mysqladmin --connect-timeout=2 ping >/dev/null 2>&1 ||
        { show_log "$STATE/log/mariadbd.log"; die "mariadbd failed to start"; }
fi
mysql -u root <<SQL || die "could not create the database user $DB_USER"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'localhost';
SQL

# ---- configs -------------------------------------------------------------------
DBD_CHANGED=0
CTL_CHANGED=0
write_if_changed "$CONF_DIR/slurmdbd.conf" slurm:slurm 600 <<EOF && DBD_CHANGED=1
# Written by .ci/setup-slurm.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
EOF

write_if_changed "$CONF_DIR/slurm.conf" root:root 644 <<EOF && CTL_CHANGED=1
# Written by .ci/setup-slurm.sh: one node, no cgroups, no systemd.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM
ReturnToService=2
MailProg=/bin/true
# Short timings so that tests see time-outs, kills and cleanups quickly.
OverTimeLimit=0
KillWait=2
MinJobAge=60
InactiveLimit=0
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$REAL_MB State=UNKNOWN
# Each core may run up to 4 jobs at once: tests that wait for a time-out or leave a
# job running do not block each other on a 2-core machine.
PartitionName=normal Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
PartitionName=debug Nodes=$HOST Default=NO MaxTime=30 State=UP OverSubscribe=FORCE:4
EOF

# ---- slurmdbd -------------------------------------------------------------------
DBD_PID=$STATE/run/slurmdbd.pid
CTL_PID=$STATE/run/slurmctld.pid
D_PID=$STATE/run/slurmd.pid
((DBD_CHANGED)) && stop slurmdbd "$DBD_PID"
if ! running slurmdbd "$DBD_PID"; then
    log "starting slurmdbd"
    /usr/sbin/slurmdbd </dev/null >>"$STATE/log/slurmdbd.log" 2>&1 ||
        { show_log "$STATE/log/slurmdbd.log"; die "slurmdbd failed to start"; }
fi
wait_for 60 "slurmdbd to answer sacctmgr" sacctmgr -n -P show cluster format=cluster ||
    { show_log "$STATE/log/slurmdbd.log"; die "slurmdbd does not answer"; }

# ---- cluster, account, users --------------------------------------------------
in_list() { grep -qxF "$1" <<<"$2"; }
if ! in_list "$CLUSTER" "$(sacctmgr -n -P show cluster format=cluster)"; then
    log "registering cluster $CLUSTER"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if ! in_list "$ACCOUNT" "$(sacctmgr -n -P show account format=account)"; then
    log "adding account $ACCOUNT"
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" \
        description="aiida-firecrest tests" organization=aiida >/dev/null
fi
for u in "${USERS[@]}"; do
    if ! in_list "$u" "$(sacctmgr -n -P show assoc where cluster="$CLUSTER" account="$ACCOUNT" format=user)"; then
        log "adding user $u to account $ACCOUNT"
        sacctmgr -i add user "$u" account="$ACCOUNT" cluster="$CLUSTER" defaultaccount="$ACCOUNT" >/dev/null
    fi
    if [ "$(sacctmgr -n -P show user "$u" format=defaultaccount)" != "$ACCOUNT" ]; then
        log "setting default account of $u to $ACCOUNT"
        sacctmgr -i modify user where name="$u" set defaultaccount="$ACCOUNT" >/dev/null
    fi
done
users_in_assoc() {
    local assoc u
    assoc=$(sacctmgr -n -P show assoc where cluster="$CLUSTER" account="$ACCOUNT" format=user)
    for u in "${USERS[@]}"; do in_list "$u" "$assoc" || return 1; done
}
wait_for 30 "sacctmgr show assoc to list ${USERS[*]}" users_in_assoc || die "users missing from the associations"

# ---- slurmctld, slurmd ------------------------------------------------------
CTL_WAS_RUNNING=0
running slurmctld "$CTL_PID" && CTL_WAS_RUNNING=1
if ((CTL_CHANGED)); then
    stop slurmd "$D_PID"
    stop slurmctld "$CTL_PID"
fi
if ! running slurmctld "$CTL_PID"; then
    log "starting slurmctld"
    /usr/sbin/slurmctld </dev/null >>"$STATE/log/slurmctld.log" 2>&1 ||
        { show_log "$STATE/log/slurmctld.log"; die "slurmctld failed to start"; }
fi
ctld_up() { [[ $(scontrol ping 2>/dev/null) == *"is UP"* ]]; }
wait_for 60 "slurmctld to answer (scontrol ping)" ctld_up ||
    { show_log "$STATE/log/slurmctld.log"; die "slurmctld does not answer"; }
if ! running slurmd "$D_PID"; then
    log "starting slurmd"
    /usr/sbin/slurmd </dev/null >>"$STATE/log/slurmd.log" 2>&1 ||
        { show_log "$STATE/log/slurmd.log"; die "slurmd failed to start"; }
fi

node_state() { sinfo -h -N -n "$HOST" -o '%t' 2>/dev/null | head -n 1; }
node_up() { [[ $(node_state) =~ ^(idle|mix|mixed|alloc|allocated|comp|completing)$ ]]; }
if [[ $(node_state) =~ (drain|down|fail) ]]; then
    log "resuming node $HOST (state $(node_state))"
    scontrol update nodename="$HOST" state=resume || true
fi
wait_for 60 "node $HOST to be idle in sinfo" node_up ||
    { show_log "$STATE/log/slurmd.log"; show_log "$STATE/log/slurmctld.log"; die "node $HOST is '$(node_state)'"; }
# Jobs saved in the state of a slurmctld that was not running (a previous session, a
# reboot) belong to nobody now; Slurm would requeue and rerun them: cancel them.
if ((!CTL_WAS_RUNNING)); then
    mapfile -t LEFT < <(squeue -h -o '%A')
    if ((${#LEFT[@]})); then
        log "cancelling ${#LEFT[@]} job(s) left from before slurmctld was started: ${LEFT[*]}"
        scancel "${LEFT[@]}" || true
    fi
fi
# slurmctld must know the users' associations, or (with enforcement) it rejects their jobs.
ctld_knows_users() {
    local u
    for u in "${USERS[@]}"; do
        [[ $(scontrol show assoc_mgr users="$u" accounts="$ACCOUNT" flags=assoc 2>/dev/null) == *"UserName=$u("* ]] || return 1
    done
}
wait_for 30 "slurmctld to load the associations of ${USERS[*]}" ctld_knows_users ||
    die "slurmctld does not know the associations of ${USERS[*]}"

# ---- self-test: a real job as the first user -----------------------------------------
U=${USERS[0]}
OUT=$(runuser -u "$U" -- mktemp /tmp/slurm-selftest.XXXXXX)
JOB=$(runuser -u "$U" -- sbatch --parsable --job-name=setup-selftest --chdir=/tmp \
    --output="$OUT" --time=1 --wrap 'echo ok') || die "sbatch as $U failed"
JOB=${JOB%%;*}
job_state() { sacct -j "$JOB" -X -n -P -o State 2>/dev/null | head -n 1; }
job_done() { [[ $(job_state) =~ ^(COMPLETED|FAILED|CANCELLED.*|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)$ ]]; }
wait_for 60 "job $JOB to finish in sacct" job_done ||
    { show_log "$STATE/log/slurmctld.log"; die "job $JOB is '$(job_state)' after 60 s"; }
STATE_JOB=$(job_state)
[ "$STATE_JOB" = COMPLETED ] ||
    { show_log "$STATE/log/slurmd.log"; die "job $JOB ended $STATE_JOB, not COMPLETED"; }
[ "$(cat "$OUT")" = ok ] || die "job $JOB output is '$(cat "$OUT")', expected 'ok'"
[ "$(stat -c %U "$OUT")" = "$U" ] || die "job $JOB output is owned by $(stat -c %U "$OUT"), expected $U"
rm -f "$OUT"

log "Slurm is up: $(sinfo -V), cluster $CLUSTER, node $HOST ($NCPU CPUs, ${REAL_MB} MB, $(node_state))"
log "  partitions: $(sinfo -h -o '%P' | paste -sd ' ')"
log "  account $ACCOUNT, users: ${USERS[*]}; logs and state in $STATE"
log "  self-test job $JOB as $U: $STATE_JOB in sacct"
