#!/usr/bin/env bash
# The compose `master` service: run each scenario of $LQH_SCENARIOS (names or groups, as
# `lqharness list` takes them) as one headless Locust master that waits for $LQH_WORKERS workers,
# writes its run folder under /runs/$LQH_RUN_ID and judges it, with $LQH_CRITERIA when set. Marks
# its start (master.started, the healthcheck the judge waits for) and its end (master.exit: the
# combined exit code, fail wins over inconclusive, as `lqharness run` combines them).
set -uo pipefail

dir="/runs/${LQH_RUN_ID:-nightly}"
mkdir -p "$dir"
rm -f "$dir/master.exit"
touch "$dir/master.started"
scenarios="$(lqharness list ${LQH_SCENARIOS:-live stress} | awk 'NF {print $1}')" || {
    echo 2 >"$dir/master.exit"
    exit 2
}
status=0
for scenario in $scenarios; do
    echo "master: $scenario with ${LQH_WORKERS:-2} workers"
    # LQH_RUN_ARGS is a list of options (e.g. --quick): split on purpose.
    # shellcheck disable=SC2086
    locust -f locustfiles/live.py --headless --master --master-bind-host 127.0.0.1 \
        --master-bind-port "${LQH_MASTER_PORT:-18557}" --expect-workers "${LQH_WORKERS:-2}" \
        --scenario "$scenario" --target kalamdb --target-url "$LQH_TARGET_URL" --runs-dir "$dir" \
        ${LQH_CRITERIA:+--criteria "$LQH_CRITERIA"} ${LQH_RUN_ARGS:-}
    rc=$?
    if [ "$rc" -eq 1 ]; then
        status=1
    elif [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
        status=2
    fi
done
echo "$status" >"$dir/master.exit"
exit "$status"
