#!/usr/bin/env bash
# Shared settings of the compose scripts (sourced, not run): where the private Docker daemon keeps
# its state, how the clients reach it, and the one-line failure helper. Nothing here starts anything.
# The daemon is this project's own (own socket, data root and exec root), so a Docker already on the
# machine is never touched.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${LQH_COMPOSE_STATE:-/var/tmp/lqh-compose}"
export DOCKER_HOST="unix://$STATE/docker.sock"
export DOCKER_CONFIG="$STATE/config"
# No image is ever pulled: the clients and the daemon see a proxy on a dead loopback port.
DEAD_PROXY="http://127.0.0.1:9"
BASE_IMAGE="${LQH_BASE_IMAGE:-python:3.11-slim-bookworm}"
HARNESS_IMAGE="${LQH_IMAGE:-livequery-harness:local}"
COMPOSE_PROJECT="${COMPOSE_PROJECT_NAME:-lqh}"
export COMPOSE_PROJECT_NAME="$COMPOSE_PROJECT" LQH_IMAGE="$HARNESS_IMAGE"

die() {
    echo "compose: $*" >&2
    exit 1
}

docker_cli() {
    HTTP_PROXY="$DEAD_PROXY" HTTPS_PROXY="$DEAD_PROXY" http_proxy="$DEAD_PROXY" https_proxy="$DEAD_PROXY" \
        NO_PROXY= no_proxy= docker "$@"
}
