#!/usr/bin/env bash
# `make compose`: from a machine with no Docker to a finished compose run, and back. Installs the
# engine and Compose (install.sh), starts the project's own daemon (dockerd-start.sh), builds the base
# image without any registry pull (base-image.sh) and the harness image (build.sh), runs one quick
# scenario through the whole topology to a checked verdict (run.sh), and stops the daemon by PID
# (dockerd-stop.sh), whatever happened. Prints each step's seconds. Exit code: run.sh's (the
# verdict), 3 when a Docker engine cannot start on this machine, 1 for any other failure.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"

timings=()
step() {
    local name="$1" began status=0
    shift
    began="$(date +%s)"
    "$@" || status=$?
    timings+=("$name $(($(date +%s) - began))s")
    return "$status"
}

total_began="$(date +%s)"
step install bash "$here/install.sh"
step dockerd bash "$here/dockerd-start.sh"
trap 'bash "$here/dockerd-stop.sh"' EXIT
step base-image bash "$here/base-image.sh"
step build bash "$here/build.sh"
rc=0
step run bash "$here/run.sh" || rc=$?
echo "compose: ${timings[*]}; total $(($(date +%s) - total_began))s"
exit "$rc"
