#!/usr/bin/env bash
# Run the compose topology once, to a verdict: refuse unless every service uses host networking and
# no network is declared; `up -d` with --pull never; `docker wait` on the judge (its exit code is the
# verdict); the services' logs into $dir/compose.log; check that verdict.json says pass in every run
# folder; `down`. Defaults: one quick scenario (LQH_SCENARIOS, LQH_RUN_ARGS) with 2 workers, judged
# with quick-criteria.toml (LQH_CRITERIA, a path in the image; empty: the defaults), into
# $LQH_RUNS (default ./runs) under a fresh LQH_RUN_ID; LQH_COMPOSE_FILE names another compose file.
# Exit code: the judge's.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export LQH_SCENARIOS="${LQH_SCENARIOS:-live.multi-listener}"
export LQH_RUN_ARGS="${LQH_RUN_ARGS---quick}"
export LQH_CRITERIA="${LQH_CRITERIA-scripts/compose/quick-criteria.toml}"
export LQH_WORKERS="${LQH_WORKERS:-2}"
export LQH_RUN_ID="${LQH_RUN_ID:-compose-$(date -u +%Y%m%dT%H%M%SZ)}"
export LQH_RUNS="${LQH_RUNS:-$ROOT/runs}"
export COMPOSE_PROFILES="${COMPOSE_PROFILES:-ref}"
dir="$LQH_RUNS/$LQH_RUN_ID"
mkdir -p "$dir"
compose=(docker_cli compose --project-directory "$ROOT" -f "${LQH_COMPOSE_FILE:-$ROOT/docker-compose.yml}")

# Host networking only: a service without it, or any network, would make compose create a bridge.
"${compose[@]}" config --format json >"$dir/compose-config.json"
python3 - "$dir/compose-config.json" <<'PY' || die "run: refusing to start: the compose file must use host networking only"
import json
import sys

config = json.load(open(sys.argv[1]))
bad = [name for name, svc in config.get("services", {}).items() if svc.get("network_mode") != "host" or svc.get("networks")]
if config.get("networks") or bad:
    print(f"compose: services without network_mode host: {bad or 'none'}; networks: {sorted(config.get('networks') or {})}", file=sys.stderr)
    sys.exit(1)
PY

cleanup() {
    "${compose[@]}" logs --no-color --timestamps >"$dir/compose.log" 2>&1 || true
    "${compose[@]}" down --remove-orphans --timeout 20 >/dev/null 2>&1 || true
}
trap cleanup EXIT
"${compose[@]}" up -d --pull never --scale "worker=$LQH_WORKERS" >"$dir/compose-up.log" 2>&1 \
    || { tail -n 20 "$dir/compose-up.log" >&2; die "run: docker compose up failed"; }
judge="$("${compose[@]}" ps -a -q judge)"
[ -n "$judge" ] || die "run: no judge container"
verdict_code="$(docker_cli wait "$judge")"
"${compose[@]}" logs --no-color judge | sed 's/^/  /'
echo "compose: judge exit $verdict_code; run folders and compose.log in $dir"

mapfile -t verdicts < <(find "$dir" -mindepth 2 -maxdepth 2 -name verdict.json | sort)
[ "${#verdicts[@]}" -gt 0 ] || die "run: no verdict.json under $dir"
if [ "$verdict_code" -eq 0 ]; then
    python3 - "${verdicts[@]}" <<'PY' || die "run: the judge passed but a verdict.json does not say pass"
import json
import sys

bad = [path for path in sys.argv[1:] if json.load(open(path)).get("verdict") != "pass"]
if bad:
    print("compose: not pass: " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
fi
exit "$verdict_code"
