#!/usr/bin/env bash
# Install and start a local PostgreSQL server (Debian's postgresql) for AiiDA
# profiles on `core.psql_dos`, as root, without systemd.
#
#   sudo .ci/setup-postgresql.sh [USER ...]
#
# Idempotent: installs only if missing, creates the cluster only if there is
# none, starts it only if it does not answer, and gives each USER (default:
# $SUDO_USER, else root) a database role of the same name that may log in and
# create databases, only if it has none. Roles authenticate by `peer` over the
# Unix socket (Debian's default pg_hba.conf), so no password is involved: an
# AiiDA profile reaches the server with an empty database hostname.
set -euo pipefail

CLUSTER=main

# Touched after each `apt-get update` by .ci/run and the .ci/setup-*.sh scripts.
APT_STAMP=/var/tmp/aiida-firecrest-ci.apt-updated

T0=$SECONDS
log() { printf '[setup-postgresql %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() {
    printf '[setup-postgresql] ERROR: %s\n' "$*" >&2
    exit 1
}
# wait_until TIMEOUT_S DESCRIPTION CMD...: poll CMD until it succeeds, or fail.
wait_until() {
    local timeout=$1 deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
        sleep 0.3
    done
}
as_postgres() { runuser -u postgres -- "$@"; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
USERS=("$@")
((${#USERS[@]})) || USERS=("${SUDO_USER:-root}")

if [[ $(dpkg-query -W -f='${Status}' postgresql 2>/dev/null) != 'install ok installed' ]]; then
    log "installing postgresql"
    # apt-get update once: skip it if another step of this run did it (the stamp).
    if [ -z "$(find "$APT_STAMP" -mmin -60 2>/dev/null)" ]; then
        apt-get update -qq || die "apt-get update failed"
        touch "$APT_STAMP"
    fi
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then # keep the package from starting the server itself
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null ||
        { ((created_policy)) && rm -f /usr/sbin/policy-rc.d; die "apt-get install postgresql failed"; }
    ((created_policy)) && rm -f /usr/sbin/policy-rc.d
fi

VERSION=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
[ -n "$VERSION" ] || die "no PostgreSQL server under /usr/lib/postgresql"
if ! pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c { found = 1 } END { exit !found }'; then
    log "creating the cluster $VERSION/$CLUSTER"
    pg_createcluster "$VERSION" "$CLUSTER" >/dev/null || die "pg_createcluster $VERSION $CLUSTER failed"
fi
if ! as_postgres pg_isready -q; then
    log "starting PostgreSQL $VERSION/$CLUSTER"
    pg_ctlcluster "$VERSION" "$CLUSTER" start || die "pg_ctlcluster $VERSION $CLUSTER start failed"
    wait_until 60 "PostgreSQL to accept connections" as_postgres pg_isready -q
fi

for user in "${USERS[@]}"; do
    id -u "$user" >/dev/null 2>&1 || die "no such user: $user"
    exists=$(as_postgres psql -XtA -v name="$user" <<<"SELECT 1 FROM pg_roles WHERE rolname = :'name'")
    if [ "$exists" != 1 ]; then
        as_postgres createuser --login --createdb "$user" || die "createuser $user failed"
        log "created the database role $user (login, createdb; peer authentication)"
    fi
done
log "PostgreSQL $VERSION is up ($(as_postgres psql -XtAc 'SHOW unix_socket_directories'), roles: ${USERS[*]})"
