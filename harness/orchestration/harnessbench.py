"""The harness section of ``make bench``: the load generator's own capacity, beside its goals and ceilings.

Each figure runs a ``benchfeed`` sender (a fake KalamDB that is never the bottleneck) in one
process and the harness's own code in a gevent process (``benchload``), as a Locust process
runs it; the ceilings are bare websocket-client loops against the same sender. Every figure is
the median of ``repeats`` runs. ``measure`` returns plain data, ``section`` the Markdown.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from harness.errors import HarnessError
from harness.orchestration.benchfeed import Feed, serve
from harness.orchestration.judgebench import LISTENERS, MEMORY_GOAL, ROWS, TIME_GOAL_S, judge_scale
from harness.orchestration.judgebench import WRITERS as JUDGE_WRITERS

INGEST_FRAMES = 60_000
INGEST_GOAL = 50_000.0
INGEST_SHARE_GOAL = 0.60
LATENCY_LISTENERS = 20
LATENCY_RATES = (1_000, 20_000)  # notifications/s: LATENCY_LISTENERS x changes/s
INJECTED_DELAY_MS = 10.0
ADDED_P99_GOAL_MS = 1.0
CAPACITY_LISTENERS = 10_000
CAPACITY_SECONDS = 90.0
CAPACITY_RSS_GOAL = 20 * 1024
FANIN_SIZES = (10, 20, 30, 50, 100, 250, 500, 1000)
FANIN_CHANGES_PER_S = 20
FANIN_QUEUE_LIMIT_MS = 5.0
WRITERS = 10
CLIENT_TIMEOUT = 240.0
LISTENERS_X_WRITERS = f"{LISTENERS} listeners × {JUDGE_WRITERS} writers × {ROWS:,} rows"


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def run_pair(feed: Feed, task: dict[str, Any], timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
    """One sender process with ``feed`` and one ``benchload`` client running ``task``; the client's result."""
    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    sender = ctx.Process(target=serve, args=(feed, out, stop), daemon=True)
    sender.start()
    try:
        port = out.get(timeout=30)
        proc = subprocess.run(
            [sys.executable, "-m", "harness.orchestration.benchload", json.dumps({**task, "port": port})],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"bench: the {task['kind']} client did not finish within {timeout:g}s") from exc
    finally:
        stop.set()
        sender.join(10)
        if sender.is_alive():
            sender.kill()
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise HarnessError(f"bench: the {task['kind']} client failed: {tail[0]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _repeat(repeats: int, label: str, once: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    runs = []
    for i in range(repeats):
        _say(f"{label} ({i + 1}/{repeats})")
        runs.append(once())
    return runs


INGEST_KINDS = {"harness": False, "bare": True, "frames": "frames"}  # the harness, and its two ceilings


def ingest(repeats: int) -> dict[str, Any]:
    """Figure 1: notifications/s one process fully checks, and the bare receive-and-parse ceilings.

    The runs of the three loops alternate, so each repeat sees the machine about as loaded.
    """
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in INGEST_KINDS}
    for i in range(repeats):
        for key, bare in INGEST_KINDS.items():
            _say(f"listener ingest, {key} ({i + 1}/{repeats})")
            task = {"kind": "ingest", "bare": bare, "count": INGEST_FRAMES}
            runs[key].append(run_pair(Feed("burst", count=INGEST_FRAMES), task))
    return {
        key: {"rate": _median(found, "rate"), "anomalies": max(r["anomalies"] for r in found)}
        for key, found in runs.items()
    }


def _paced(rate: float, listeners: int, seconds: float, bare: bool, writers: bool) -> dict[str, Any]:
    changes_per_s = rate / listeners
    count = max(1, int(changes_per_s * seconds))
    feed = Feed("paced", count=count, rate=changes_per_s, delay_ms=INJECTED_DELAY_MS, expect=listeners)
    task = {
        "kind": "paced",
        "bare": bare,
        "listeners": listeners,
        "count": count,
        "seconds": seconds,
        "delay_ms": INJECTED_DELAY_MS,
        "writers": WRITERS,
        "write_rate": changes_per_s if writers else 0,
    }
    return run_pair(feed, task)


def latency(repeats: int, seconds: float) -> dict[str, Any]:
    """Figure 2: measured minus injected latency at each rate, listeners and writers in one process."""
    out: dict[str, Any] = {}
    for rate in LATENCY_RATES:
        for bare in (False, True):
            runs = _repeat(
                repeats,
                f"added latency at {rate:,}/s, {'bare loop' if bare else 'harness'}",
                partial(_paced, rate, LATENCY_LISTENERS, seconds, bare, not bare),
            )
            out[f"{rate}-{'bare' if bare else 'harness'}"] = {
                k: _median(runs, k) for k in ("p50", "p99", "lag_max_ms", "delivered", "expected", "anomalies")
            }
    return out


def capacity() -> dict[str, Any]:
    """Figure 3: idle subscribed listeners one process holds, and RSS per listener (one run: it is slow)."""
    _say(f"connection capacity: up to {CAPACITY_LISTENERS:,} idle listeners")
    return run_pair(
        Feed("idle"),
        {"kind": "capacity", "listeners": CAPACITY_LISTENERS, "seconds": CAPACITY_SECONDS},
        timeout=CAPACITY_SECONDS + 120,
    )


def fanin(seconds: float) -> dict[str, Any]:
    """Figure 4: one change to L listeners of one process; the spread of arrival and the added latency vs L."""
    steps = []
    for size in FANIN_SIZES:
        _say(f"fan-in to {size} listeners")
        result = _paced(FANIN_CHANGES_PER_S * size, size, seconds, False, False)
        result["listeners"] = size
        steps.append(result)
        if result["spread_p99"] > 4 * FANIN_QUEUE_LIMIT_MS:
            break
    within = [s["listeners"] for s in steps if s["spread_p99"] <= FANIN_QUEUE_LIMIT_MS]
    return {"steps": steps, "limit": max(within) if within else None}


def writes(repeats: int, seconds: float) -> dict[str, Any]:
    """Figure 6: inserts/s of WRITERS writers with one request in flight each, harness vs FastHttpUser."""
    out = {}
    for client in ("harness", "fasthttp"):
        runs = _repeat(
            repeats,
            f"generator writes, {client}",
            partial(
                run_pair, Feed("idle"), {"kind": "writes", "client": client, "writers": WRITERS, "seconds": seconds}
            ),
        )
        out[client] = {"rate": _median(runs, "rate"), "failures": max(r["failures"] for r in runs)}
    return out


def measure(repeats: int, seconds: float) -> dict[str, Any]:
    """All harness figures (each a median of ``repeats`` runs of about ``seconds``)."""
    started = time.monotonic()
    results: dict[str, Any] = {
        "ingest": ingest(repeats),
        "latency": latency(repeats, seconds),
        "capacity": capacity(),
        "fanin": fanin(min(seconds, 3.0)),
        "writes": writes(repeats, seconds),
    }
    _say("checker and judge scale")
    results["judge"] = judge_scale()
    results["seconds_total"] = time.monotonic() - started
    return results


def _ok(good: bool) -> str:
    return "met" if good else "**not met**"


def section(results: dict[str, Any], repeats: int) -> list[str]:
    """The harness section of BENCHMARKS.md: every figure beside its goal and its ceiling."""
    ing, lat, cap, fan, wr, jb = (results[k] for k in ("ingest", "latency", "capacity", "fanin", "writes", "judge"))
    frames = ing.get("frames", ing["bare"])["rate"]  # a report from before the frame reader has one ceiling
    ceiling = max(ing["bare"]["rate"], frames)  # the share is of the faster bare loop
    share = ing["harness"]["rate"] / ceiling
    ingest_ok = ing["harness"]["rate"] >= INGEST_GOAL and share >= INGEST_SHARE_GOAL
    lines = [
        "## The load generator itself",
        "",
        "A `benchfeed` sender (a fake KalamDB on loopback: canned HTTP replies, pre-encoded or once-encoded "
        "change frames, raw asyncio under uvloop) feeds one gevent process running the harness's own code "
        "(`benchload`): the KalamDB driver's listener with its frame reader and receive slice, the delivery "
        "tracker, Locust's statistics (NOTIFY batched as the listeners record it, `locustfiles.notify`), and "
        "the event-loop lag sampler. Ceilings are bare receive-and-parse loops (orjson) on the same "
        "connection against the same sender: websocket-client's own frame reading, and the harness's "
        "`FrameReader`; figure 1's share is of the faster one. Medians of "
        f"{repeats} runs unless noted (figure 1's loops alternate run by run). The runner's per-process "
        "capacity (half of figures 1 and 6, and figure 4) is written to "
        "`~/.cache/livequery-harness/capacity.json`, where `lqharness run` reads it.",
        "",
        "| # | Figure | Result | Goal | Ceiling | |",
        "|---|---|---|---|---|---|",
        f"| 1 | listener ingest per process (fully checked) | {ing['harness']['rate']:,.0f}/s "
        f"({share:.0%} of bare) | ≥ {INGEST_GOAL:,.0f}/s and ≥ {INGEST_SHARE_GOAL:.0%} of bare | "
        f"bare loop {ing['bare']['rate']:,.0f}/s"
        + (f" (websocket-client's frames), {frames:,.0f}/s (the harness's frame reader)" if "frames" in ing else "")
        + f" | {_ok(ingest_ok)} |",
    ]
    for rate in LATENCY_RATES:
        h, b = lat[f"{rate}-harness"], lat[f"{rate}-bare"]
        goal = f"p99 ≤ {ADDED_P99_GOAL_MS:g} ms" if rate == max(LATENCY_RATES) else ""
        verdict = _ok(h["p99"] <= ADDED_P99_GOAL_MS) if goal else ""
        lines.append(
            f"| 2 | added latency at {rate:,}/s (measured − {INJECTED_DELAY_MS:g} ms injected), p50 / p99 | "
            f"{h['p50']:.2f} / {h['p99']:.2f} ms ({h['delivered']:,.0f}/{h['expected']:,.0f} in time bound) | "
            f"{goal} | bare {b['p50']:.2f} / {b['p99']:.2f} ms | {verdict} |"
        )
    cap_ok = cap["held"] >= CAPACITY_LISTENERS and cap["rss_per_listener"] <= CAPACITY_RSS_GOAL
    lines.append(
        f"| 3 | idle subscribed listeners in one process, RSS each (one run) | {cap['held']:,} of "
        f"{cap['asked']:,}, {cap['rss_per_listener'] / 1024:,.1f} KB each | {CAPACITY_LISTENERS:,} at ≤ "
        f"{CAPACITY_RSS_GOAL // 1024} KB | descriptor limit {cap['nofile']:,}"
        + (f"; stopped by {cap['error']}" if cap.get("error") else "")
        + f" | {_ok(cap_ok)} |"
    )
    limit = fan["limit"]
    lines.append(
        f"| 4 | listeners per process before one change's arrival spread exceeds {FANIN_QUEUE_LIMIT_MS:g} ms "
        f"(p99) | {limit if limit is not None else 'none of the steps'} | (measured) | "
        f"largest step {fan['steps'][-1]['listeners']:,} | |"
    )
    judge_ok = jb["seconds"] <= TIME_GOAL_S and jb["peak_rss"] <= MEMORY_GOAL
    lines.append(
        f"| 5 | merge and judge {jb['notifications']:,} notifications ({LISTENERS_X_WRITERS}) and one hour of "
        f"samples (one run) | {jb['seconds']:.1f} s (merge {jb['merge_seconds']:.1f} s), peak "
        f"{jb['peak_rss'] / (1 << 20):,.0f} MB | ≤ {TIME_GOAL_S:g} s, ≤ {MEMORY_GOAL >> 20} MB | | {_ok(judge_ok)} |"
    )
    lines.append(
        f"| 6 | generator inserts/s, {WRITERS} writers, one request in flight each | "
        f"{wr['harness']['rate']:,.0f}/s | (measured) | Locust FastHttpUser {wr['fasthttp']['rate']:,.0f}/s | |"
    )
    worst = max(lat[f"{rate}-harness"]["lag_max_ms"] for rate in LATENCY_RATES)
    lines.append(
        f"| 7 | worst event-loop lag during figure 2 (gevent timer lateness) | {worst:,.1f} ms | judged: latency "
        "criteria inconclusive above `[generator] max_lag_fraction` of their threshold | | |"
    )
    lines += [
        "",
        f"Fan-in: one change to L listeners of one process, {FANIN_CHANGES_PER_S} changes/s:",
        "",
        "| L | notifications/s | arrival spread p50 ms | spread p99 ms | added latency p50 ms | p99 ms | delivered |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in fan["steps"]:
        lines.append(
            f"| {s['listeners']:,} | {s['listeners'] * FANIN_CHANGES_PER_S:,} | {s['spread_p50']:.2f} | "
            f"{s['spread_p99']:.2f} | {s['p50']:.2f} | {s['p99']:.2f} | {s['delivered']:,}/{s['expected']:,} |"
        )
    lines += ["", *NOTES, ""]
    return lines


NOTES = (
    "What bounds these figures (py-spy, 250 Hz, over a 300,000-notification ingest run of figure 1, share of "
    "the receive loop's samples; before: the same profile of the previous code):",
    "",
    "- Listener ingest is per-notification Python work, about 20 µs of it on this VM: the delivery tracker "
    "41% (identity from the row 9%, the value checks 10%, most of it the content digest, duplicates and "
    "order 7%, the latency histogram 4%), decoding to `Change` 18% (BIGINT strings to ints 7%), orjson 8%, "
    "the frame reader 9% (its socket calls 2%), the listener's receive glue 10%, Locust's statistics 6%. "
    "Before, websocket-client read each frame with three socket calls (25%), and one request event per "
    "notification cost 11%; frames are now cut from one buffer filled by one read of what the socket holds "
    "(`harness.targets.kalamdb.frames`), and NOTIFY successes are added to Locust's statistics in batches of "
    "at most 0.2 s, rebuilt the way Locust's master adds a worker's report (`locustfiles.notify`; every "
    "figure Locust shows is the one per-notification events give, unit-tested). The bare loop on the same "
    "frame reader parses a notification in about 4 µs, so 60% of it would leave about 2.5 µs for decoding "
    "and every check: not reachable in Python with the checks kept; against websocket-client's own frame "
    "reading the harness is at about 70%, and 50,000/s is at the edge of what this VM gives. Side by side "
    "(main's code and this, alternating, 3 runs each, one minute apart): 12,896/s before, 49,791/s after, "
    "websocket-client's bare loop 78,226/s.",
    "- Added latency at 20,000/s: before, one process ingested less than 20,000/s and the notifications "
    "queued for seconds (864 / 2,239 ms p50 / p99); now it keeps up (17 / 127 ms in a run at load average 5, "
    "the figures above at 2 to 3). In the paced feed each notification arrives alone, so every one also "
    "costs its listener a full wake-up (a greenlet switch, a socket read, the receive slice's timer) besides "
    "the checks, and the ten writers share the process: at 20,000/s that is most of a core on this shared "
    "VM, and the p99 follows the machine's scheduling (the bare loop's own p99 in the same run is in the "
    "table). p99 ≤ 1 ms is not reached here; it needs a process with headroom (below figure 1's rate) on an "
    "otherwise idle core.",
    "- Fan-in: one change to L listeners of a process is read one listener after another, so the spread "
    "grows by one notification's cost per listener; the limit is the step whose p99 spread stays within 5 "
    "ms. `lqharness run` spreads listeners over workers so that no process holds more than it (from "
    "`capacity.json`; without one, 10, and the layout note names the source).",
    "- In `lqharness run`'s in-process layout the coordinator took every listener's live-view delta once a "
    "second as an HDR histogram encoded and decoded (about 2 ms a listener, tens of ms of loop stall a "
    "second); it now takes the histograms as objects. `stress.writers-listeners --quick` was far from the "
    "bare subscribers (main's code p50 10.7 / p99 48.0 ms, in-process, beside the server section's bare "
    "subscribers at 2.36 / 8.95 ms a minute later) although its Locust process used about 30% of a core: the "
    "inserts' own round trip had a median of 9 to 12 ms, because its ten writers, started together at one "
    "rate, sent their requests in one burst each period and queued at the server. Paced streams now start at "
    "phases spread over the period (writer id times the golden ratio's fraction): insert round trip median 2 "
    "ms, delivery latency p50 3.9 / 4.0 ms, p99 17.6 / 20.8 ms in two runs at load average 2. The remaining "
    "p99 is the loop lag (15 to 20 ms in those runs, the machine's scheduling under `nice`).",
    "- Generator writes: paced writer streams now keep their schedule (the next write is due one period "
    "after the previous one was due, not after it was done), so the lateness of wake-ups and replies no "
    "longer lowers the rate: quick `stress.cpu` reached 773 of 1,000 inserts/s before, 994 after, on this "
    "machine under load (996 with the phases).",
    "- Connection capacity was bounded by two HDR latency histograms per listener (190 KB each); they are "
    "sparse (a few KB). Idle listeners wake once per receive slice (1 s) and send a heartbeat every 4 s.",
    "- Other sessions shared this machine's two cores while these figures were taken (load average 2 to 3 in "
    "this run, 5 in one ten minutes before), and the bench ran under `nice -n 10`; medians of repeated runs "
    "damp but do not remove that: figure 1's harness loop measured 38,236/s and 49,336/s in those two "
    "invocations of the same code.",
)
