#!/usr/bin/env bash
# Install what the Parse target needs from Debian when it is missing: Node.js with npm, and the wal2json
# logical decoding plugin of each installed PostgreSQL major (live.contention reads the commit order with
# it; the PostgreSQL server comes from scripts/install-postgresql.sh). Idempotent: does nothing when all are there.
# parse-server 9.10.0 needs Node >=20.19 (Debian 12's own nodejs is 18; the harness says so in one
# line when it meets an older node).
set -euo pipefail

packages=()
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
for libdir in /usr/lib/postgresql/*/lib; do
    [ -d "$libdir" ] || continue
    major="$(basename "$(dirname "$libdir")")"
    [ -e "$libdir/wal2json.so" ] || packages+=("postgresql-$major-wal2json")
done
[ "${#packages[@]}" -eq 0 ] && exit 0
bash "$(dirname "$0")/apt-install.sh" install-parse-deps "${packages[@]}"
