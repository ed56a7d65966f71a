#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the shared-history and Parse tests (each test starts its own
# cluster in a temporary folder on a free loopback port; nothing here starts a server).
# Idempotent and quiet: does nothing when an initdb is already under /usr/lib/postgresql.
set -euo pipefail

compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && exit 0
bash "$(dirname "$0")/apt-install.sh" install-postgresql postgresql
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "install-postgresql: apt-get finished but no /usr/lib/postgresql/*/bin/initdb" >&2
    exit 1
fi
