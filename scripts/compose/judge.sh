#!/usr/bin/env bash
# The compose `judge` service: wait (at most $LQH_JUDGE_WAIT seconds) until the master has finished,
# then judge every run folder the master wrote in this run (newer than its master.started mark)
# into the `runs` bind mount, with $LQH_CRITERIA when set: verdict.json, junit.xml and report.html.
# Its exit code is the verdict (0 pass, 1 fail, 2 inconclusive or error), which `docker wait` hands
# to the caller.
set -uo pipefail

dir="/runs/${LQH_RUN_ID:-nightly}"
waited=0
until [ -e "$dir/master.exit" ]; do
    if [ "$waited" -ge "${LQH_JUDGE_WAIT:-21600}" ]; then
        echo "judge: the master did not finish within ${LQH_JUDGE_WAIT:-21600} s" >&2
        exit 2
    fi
    sleep 2
    waited=$((waited + 2))
done
mapfile -t folders < <(find "$dir" -mindepth 1 -maxdepth 1 -type d -newer "$dir/master.started" | sort)
if [ "${#folders[@]}" -eq 0 ]; then
    echo "judge: the master (exit $(cat "$dir/master.exit")) wrote no run folder in $dir" >&2
    exit 2
fi
echo "judge: master exit $(cat "$dir/master.exit"); judging ${#folders[@]} run folder(s) in $dir"
exec lqharness judge ${LQH_CRITERIA:+--criteria "$LQH_CRITERIA"} "${folders[@]}"
