#!/usr/bin/env bash
# Build the Dockerfile's base image without any registry: debootstrap a minimal Debian bookworm from
# the apt mirror this machine is configured with, import it, and tag it as the Dockerfile's FROM
# ($LQH_BASE_IMAGE), so the build never pulls. Skipped when that tag already exists.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if docker_cli image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    exit 0
fi
command -v debootstrap >/dev/null 2>&1 || die "base-image: debootstrap not installed (run scripts/compose/install.sh)"

mirror="${LQH_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    # The first non-security archive in apt's sources (deb822 "URIs:" or one-line "deb" form).
    mirror="$({ cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null || true; } \
        | sed -nE 's/^URIs:[[:space:]]*//p; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//p' \
        | awk '$1 !~ /security/ {print $1; exit}')"
fi
[ -n "$mirror" ] || die "base-image: no apt mirror found in /etc/apt; set LQH_DEBIAN_MIRROR"

rootfs="$STATE/rootfs"
rm -rf "$rootfs"
trap 'rm -rf "$rootfs"' EXIT
log="$STATE/debootstrap.log"
if ! debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates,procps \
    bookworm "$rootfs" "$mirror" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "base-image: debootstrap from $mirror failed"
fi
rm -f "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker_cli import --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
