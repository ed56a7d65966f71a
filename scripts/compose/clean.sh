#!/usr/bin/env bash
# Remove everything `make compose` keeps between runs: the daemon's data root (images, build
# cache), its exec root and logs, and the Compose plugin, all under $LQH_COMPOSE_STATE. Stops the
# daemon first. The packages apt installed stay.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$(dirname "${BASH_SOURCE[0]}")/dockerd-stop.sh"
case "$STATE" in
    / | "") die "clean: refusing to remove LQH_COMPOSE_STATE=$STATE" ;;
esac
rm -rf "$STATE"
