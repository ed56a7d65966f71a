#!/usr/bin/env bash
# The compose `monitor` service: sample the target's server process (found by the TCP port of
# $LQH_TARGET_URL, which it listens on; it shares that process's pid namespace) and the target's
# statistics into /runs/$LQH_RUN_ID/target-monitor.jsonl. Compose starts it once the target is
# healthy; it ends when the server process exits.
set -euo pipefail

port="${LQH_TARGET_URL##*:}"
port="${port%%/*}"
dir="/runs/${LQH_RUN_ID:-nightly}"
mkdir -p "$dir"
exec lqharness monitor --port "$port" --interval "${LQH_MONITOR_INTERVAL:-1}" --out "$dir/target-monitor.jsonl" \
    --target-url "$LQH_TARGET_URL" --target-user "${KALAMDB_USER:-root}"
