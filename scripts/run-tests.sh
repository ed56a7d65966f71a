#!/usr/bin/env bash
# `make test`'s pytest part. Most tests spend their time waiting on short runs, so those that do not
# measure the machine run as TEST_JOBS pytest processes at once, each a share of them by recorded
# duration (pytest-split, tests/durations.json; `make test-durations` refreshes it). The tests marked
# `serial` measure latency, memory or CPU, or load the machine (Docker builds, a browser): they run
# afterwards, one at a time, so that no test's measurement is another test's load.
# Exit code: 0 when every part passed, else the first failing part's pytest code.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
JOBS=${TEST_JOBS:-3}
MARKS="not nightly and not bench"
DURATIONS=tests/durations.json
started=$(date +%s)
status=0

echo "== the tests that do not measure the machine: $JOBS groups at once, each line tagged with its group"
pids=()
for ((k = 1; k <= JOBS; k++)); do
  (
    "$PY" -m pytest -q -p no:cacheprovider -m "$MARKS and not serial" \
      --splits "$JOBS" --group "$k" --splitting-algorithm least_duration --durations-path "$DURATIONS" 2>&1 |
      sed -u "s/^/[group $k\/$JOBS] /"
    exit "${PIPESTATUS[0]}"
  ) &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || { code=$?; [ "$status" -ne 0 ] || status=$code; }
done
echo "== parallel part done in $(($(date +%s) - started)) s; now the tests marked serial, one at a time"

"$PY" -m pytest -q -m "$MARKS and serial" || { code=$?; [ "$status" -ne 0 ] || status=$code; }
echo "== all tests done in $(($(date +%s) - started)) s (exit $status)"
exit "$status"
