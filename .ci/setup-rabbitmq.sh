#!/usr/bin/env bash
# Install and start a local RabbitMQ broker (Debian's rabbitmq-server) for the
# AiiDA daemon, as root, without systemd. Idempotent: installs only if missing,
# restarts the broker only if its config changed, starts it only if port 5672
# is closed, and waits (bounded) until the AMQP port answers.
set -euo pipefail

PORT=5672
ADVANCED=/etc/rabbitmq/advanced.config
LOG=/var/log/rabbitmq/setup-rabbitmq.log

# Touched after each `apt-get update` by .ci/run and the .ci/setup-*.sh scripts.
APT_STAMP=/var/tmp/aiida-firecrest-ci.apt-updated

T0=$SECONDS
log() { printf '[setup-rabbitmq %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() {
    printf '[setup-rabbitmq] ERROR: %s\n' "$*" >&2
    [ -f "$LOG" ] && { echo "---- last lines of $LOG:" >&2; tail -n 20 "$LOG" >&2; }
    exit 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
# wait_until TIMEOUT_S DESCRIPTION CMD...: poll CMD until it succeeds, or fail.
wait_until() {
    local timeout=$1 deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
        sleep 0.3
    done
}

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"

if [[ $(dpkg-query -W -f='${Status}' rabbitmq-server 2>/dev/null) != 'install ok installed' ]]; then
    log "installing rabbitmq-server"
    # apt-get update once: skip it if another step of this run did it (the stamp).
    if [ -z "$(find "$APT_STAMP" -mmin -60 2>/dev/null)" ]; then
        apt-get update -qq || die "apt-get update failed"
        touch "$APT_STAMP"
    fi
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then # keep the package from starting the broker itself
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null ||
        { ((created_policy)) && rm -f /usr/sbin/policy-rc.d; die "apt-get install rabbitmq-server failed"; }
    ((created_policy)) && rm -f /usr/sbin/policy-rc.d
fi
install -d -o rabbitmq -g rabbitmq -m 755 /var/log/rabbitmq

# aiida-core needs deliveries without a consumer time-out (its tasks can run for days).
WANT='[ {rabbit, [ {consumer_timeout, undefined} ]} ].'
CHANGED=0
if [ "$(cat "$ADVANCED" 2>/dev/null)" != "$WANT" ]; then
    printf '%s\n' "$WANT" >"$ADVANCED"
    chmod 644 "$ADVANCED"
    CHANGED=1
    log "wrote $ADVANCED"
fi

if port_open && ((CHANGED)); then
    log "restarting the broker to apply $ADVANCED"
    rabbitmqctl stop >>"$LOG" 2>&1 || die "rabbitmqctl stop failed"
    port_closed() { ! port_open; }
    wait_until 60 "port $PORT to close" port_closed
fi
if ! port_open; then
    log "starting rabbitmq-server"
    rabbitmq-server -detached </dev/null >>"$LOG" 2>&1 || die "rabbitmq-server -detached failed"
    # `rabbitmqctl await_startup` can return before the AMQP listener is up: poll the port.
    wait_until 120 "RabbitMQ to listen on port $PORT" port_open
fi
log "RabbitMQ is up on 127.0.0.1:$PORT ($(dpkg-query -W -f='${Version}' rabbitmq-server))"
