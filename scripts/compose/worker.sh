#!/usr/bin/env bash
# A compose `worker` replica: join the master at 127.0.0.1:$LQH_MASTER_PORT as a Locust worker, and
# join again for the master's next scenario, until the master has written master.exit (at most
# $LQH_WORKER_ROUNDS joins, so a vanished master cannot keep it looping).
set -uo pipefail

dir="/runs/${LQH_RUN_ID:-nightly}"
for _ in $(seq 1 "${LQH_WORKER_ROUNDS:-200}"); do
    [ -e "$dir/master.exit" ] && exit 0
    locust -f locustfiles/live.py --worker --master-host 127.0.0.1 --master-port "${LQH_MASTER_PORT:-18557}" || true
    sleep 1
done
echo "worker: gave up after ${LQH_WORKER_ROUNDS:-200} rounds without the master's end" >&2
exit 2
