#!/usr/bin/env bash
# A compose `worker` replica: join the master at 127.0.0.1:$LQH_MASTER_PORT as a Locust worker, and
# join again at once for the master's next scenario, until the master writes master.exit after this
# worker started (a mark left by an earlier run does not count). At most $LQH_WORKER_ROUNDS joins, so
# a vanished master cannot keep it looping. The plan comes from the master (the worker asks for it).
set -uo pipefail

dir="/runs/${LQH_RUN_ID:-nightly}"
started="$(mktemp)"
for _ in $(seq 1 "${LQH_WORKER_ROUNDS:-200}"); do
    locust -f locustfiles/live.py --worker --master-host 127.0.0.1 --master-port "${LQH_MASTER_PORT:-18557}" || true
    [ "$dir/master.exit" -nt "$started" ] && exit 0
done
echo "worker: gave up after ${LQH_WORKER_ROUNDS:-200} rounds without the master's end" >&2
exit 2
