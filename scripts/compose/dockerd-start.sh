#!/usr/bin/env bash
# Start this project's own Docker daemon in the background and wait until it answers: no bridge, no
# firewall rules (host networking only), overlay2, its own socket, data root and exec root under
# $LQH_COMPOSE_STATE, and a proxy on a dead loopback port so that it can never pull an image.
# Its PID goes to $STATE/dockerd.pid for dockerd-stop.sh. Exit 3 means the engine cannot start here.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

command -v dockerd >/dev/null 2>&1 || die "dockerd not installed (run scripts/compose/install.sh)"
mkdir -p "$STATE/data" "$STATE/exec"
pidfile="$STATE/dockerd.pid"
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    exit 0
fi
HTTP_PROXY="$DEAD_PROXY" HTTPS_PROXY="$DEAD_PROXY" NO_PROXY= \
    setsid dockerd --host "$DOCKER_HOST" --data-root "$STATE/data" --exec-root "$STATE/exec" \
    --pidfile "$STATE/dockerd.pidfile" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
    --storage-driver=overlay2 >"$STATE/dockerd.log" 2>&1 </dev/null &
echo $! >"$pidfile"
for _ in $(seq 1 60); do
    if docker_cli info >/dev/null 2>&1; then
        exit 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "compose: the Docker engine cannot start here: $(tail -n 1 "$STATE/dockerd.log")" >&2
        rm -f "$pidfile"
        exit 3
    fi
    sleep 0.5
done
echo "compose: the Docker engine did not answer within 30 s (see $STATE/dockerd.log)" >&2
exit 3
