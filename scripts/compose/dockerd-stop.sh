#!/usr/bin/env bash
# Stop the daemon dockerd-start.sh started, by its PID (SIGTERM, then SIGKILL after 20 s), and
# unmount the network-namespace mount dockerd leaves behind. Does nothing when it is not running.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

pidfile="$STATE/dockerd.pid"
if [ -s "$pidfile" ]; then
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "compose: dockerd $pid ignored SIGTERM for 20 s; killing it" >&2
            kill -KILL "$pid"
        fi
    fi
    rm -f "$pidfile"
fi
for mnt in "$STATE/exec/netns/default" /run/docker/netns/default; do
    if mountpoint -q "$mnt" 2>/dev/null || grep -qs " $mnt " /proc/mounts; then
        umount "$mnt" 2>/dev/null || umount -l "$mnt"
    fi
done
