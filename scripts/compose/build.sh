#!/usr/bin/env bash
# Build the harness image ($LQH_IMAGE) from the checkout, on the base image base-image.sh made, with
# host networking for pip and the host's extra CA certificates ($LQH_EXTRA_CA_DIR, default
# /usr/local/share/ca-certificates) trusted inside. The legacy builder is used: it never pulls a base
# that exists locally.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

docker_cli image inspect "$BASE_IMAGE" >/dev/null 2>&1 || die "build: no base image $BASE_IMAGE (run scripts/compose/base-image.sh)"
ca_dir="${LQH_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"
stage="$ROOT/.docker-ca"
rm -rf "$stage"
mkdir -p "$stage"
trap 'rm -rf "$stage"' EXIT
if [ -d "$ca_dir" ]; then
    find "$ca_dir" -maxdepth 1 -name '*.crt' -exec cp {} "$stage/" \;
fi
log="$STATE/build.log"
if ! DOCKER_BUILDKIT=0 docker_cli build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    -t "$HARNESS_IMAGE" "$ROOT" >"$log" 2>&1; then
    tail -n 25 "$log" >&2
    die "build: docker build of $HARNESS_IMAGE failed (full log: $log)"
fi
# The image this build replaced keeps no tag: remove it, so rebuilds do not pile up on disk.
docker_cli image prune --force >/dev/null
