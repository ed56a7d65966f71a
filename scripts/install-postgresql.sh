#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the shared-history test (the test starts its own cluster
# in a temporary folder on a free loopback port; nothing here starts a server).
# Idempotent and quiet: does nothing when an initdb is already under /usr/lib/postgresql.
# Needs root (or passwordless sudo) and the Debian package mirrors.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-postgresql: not root and no passwordless sudo; cannot install postgresql" >&2
        exit 1
    fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postgresql: apt-get not found; install PostgreSQL by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends postgresql; } >"$log" 2>&1; then
    echo "install-postgresql: apt-get failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "install-postgresql: apt-get finished but no /usr/lib/postgresql/*/bin/initdb" >&2
    exit 1
fi
