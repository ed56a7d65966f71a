#!/usr/bin/env bash
# Install what the Parse target needs from Debian when it is missing: Node.js with npm (the PostgreSQL
# server comes from scripts/install-postgresql.sh). Idempotent and quiet: does nothing when node and npm are there.
# parse-server 9.10.0 needs Node >=20.19 (Debian 12's own nodejs is 18; the harness says so in one
# line when it meets an older node). Needs root (or passwordless sudo) and the Debian package mirrors.
set -euo pipefail

packages=()
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
if [ "${#packages[@]}" -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-parse-deps: not root and no passwordless sudo; install ${packages[*]} by hand" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-parse-deps: apt-get not found; install ${packages[*]} by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "install-parse-deps: apt-get install ${packages[*]}"
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
    echo "install-parse-deps: apt-get failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi
