"""report.html: one self-contained page (inline CSS, figures as base64 PNG) for one judged run folder."""

from __future__ import annotations

import time
from html import escape
from typing import Any

from reports.clocks import clock_threshold_ms, tolerance_ms, worker_clocks
from reports.criteria import Criteria
from reports.network import network
from reports.plots import render_plots
from reports.regression import CRITERION, Trend
from reports.runfolder import RunFolder
from reports.trends import trend_section
from reports.verdict import Unsupported, brief

CSS = """
body { font-family: -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif; margin: 24px; color: #222;
       max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.v { font-weight: bold; text-transform: uppercase; padding: 2px 8px; border-radius: 4px; white-space: nowrap; }
.pass { background: #d9f2d9; color: #1a6b1a; } .fail { background: #f8d4d4; color: #9b1c1c; }
.inconclusive { background: #fdf0c4; color: #7a5b00; } .na { background: #e6e6e6; color: #555; }
.badge { font-size: 20px; }
figure { margin: 18px 0; } figcaption { font-size: 13px; color: #444; margin-bottom: 4px; font-weight: bold; }
figure img { max-width: 100%; border: 1px solid #eee; }
.note { color: #666; font-size: 12px; } .evidence { font-size: 12px; max-width: 640px; }
"""


def _cls(verdict: Any) -> str:
    return {"pass": "pass", "fail": "fail", "inconclusive": "inconclusive"}.get(str(verdict), "na")


def _badge(verdict: Any, extra: str = "") -> str:
    return f'<span class="v {_cls(verdict)} {extra}">{escape(str(verdict))}</span>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _when(t: Any) -> str:
    if not isinstance(t, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _run_facts(folder: RunFolder, document: dict[str, Any]) -> str:
    run = folder.run or {}
    recorded = run.get("target")
    target: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    started, ended = run.get("started_at"), run.get("ended_at")
    duration = (
        f"{ended - started:.1f} s" if isinstance(started, int | float) and isinstance(ended, int | float) else "-"
    )
    rows = [
        ["run id", escape(str(run.get("run_id", "-")))],
        ["run folder", escape(str(folder.path))],
        ["status", escape(str(run.get("status", "unknown")))],
        ["error", escape(str(run.get("error") or "-"))],
        ["target", escape(f"{target.get('name', '-')} {target.get('url') or ''}")],
        ["target protocol", escape(str(target.get("protocol") or "-"))],
        ["target features", escape(", ".join(target.get("features") or []) or "-")],
        ["started / duration", escape(f"{_when(started)} / {duration}")],
        ["workers", escape(str(run.get("workers", "-")))],
        ["criteria file", escape(str(document.get("criteria_file")))],
    ]
    return _table(["", ""], rows)


def _criteria_table(scenario: dict[str, Any]) -> str:
    rows = [
        [
            escape(str(c.get("id"))),
            escape(str(c.get("title", ""))),
            _badge(c.get("verdict")),
            escape(brief(c.get("value"))),
            escape(brief(c.get("threshold"))),
            f'<span class="evidence">{escape(str(c.get("evidence") or ""))}</span>',
        ]
        for c in scenario.get("criteria", [])
    ]
    return _table(["criterion", "title", "verdict", "value", "threshold", "evidence"], rows)


def _delivery_table(scenario: dict[str, Any]) -> str:
    delivery = scenario.get("delivery") or {}
    rows = [[escape(k), escape(brief(v))] for k, v in delivery.items()]
    return _table(["delivery", "value"], rows)


def _witnesses(folder: RunFolder, limit: int = 20) -> str:
    items = [w for w in (folder.delivery or {}).get("witnesses") or [] if isinstance(w, dict)][:limit]
    if not items:
        return '<p class="note">No anomaly witnesses recorded.</p>'
    keys = ["kind", "listener", "writer", "wseq", "row_id", "received_at", "detail"]
    return _table(keys, [[escape(brief(w.get(k))) for k in keys] for w in items])


def _degradation(scenario: dict[str, Any]) -> str:
    curve = scenario.get("degradation")
    if not curve:
        return ""
    badge = {"held": "pass", "broke": "fail", "generator": "inconclusive", "server-failed": "fail"}
    rows = [
        [
            escape(str(p["name"])), escape(brief(p.get("users"))), escape(brief(p.get("rate"))),
            escape(brief(p.get("writes_per_s"))), escape(brief(p.get("write_p95_ms"))),
            escape(brief(p.get("notify_per_s"))), escape(brief(p.get("p95_ms"))),
            escape(brief(p.get("error_ratio"))), escape(brief(p.get("generator_lag_ms"))),
            escape(brief(p.get("generator_cpu_pct"))), escape(brief(p.get("server_cpu_pct"))),
            _badge(badge.get(str(p.get("state")), "inconclusive")) + " " + escape(str(p.get("state"))),
            escape(str(p.get("why") or "")),
        ]
        for p in curve.get("steps", [])
    ]  # fmt: skip
    capacity = curve.get("capacity_writes_per_s")
    held = curve.get("held_writes_per_s")
    found = f"{brief(capacity)} writes/s" if capacity is not None else f"not found (held up to {brief(held)} writes/s)"
    head = (
        f"<p>SLO: {escape(str(curve.get('slo') or ''))}. First step breaking it: "
        f"<b>{escape(str(curve.get('first_break') or 'none'))}</b>; capacity: <b>{escape(found)}</b>; "
        f"the ramp stopped: <b>{escape(str(curve.get('stop') or 'unknown'))}</b>.</p>"
    )
    return (
        "<h2>Degradation per step</h2>"
        + head
        + _table(
            [
                "step",
                "writers",
                "asked/s",
                "writes/s",
                "write p95 ms",
                "notifications/s",
                "delivery p95 ms",
                "error ratio",
                "generator lag ms",
                "generator CPU %",
                "server CPU %",
                "state",
                "why",
            ],
            rows,
        )  # fmt: skip
    )


def _inputs(scenario: dict[str, Any]) -> str:
    inputs = scenario.get("inputs") or {}
    rows = [[escape(f), "missing or unusable", escape(r)] for f, r in (inputs.get("problems") or {}).items()]
    rows += [[escape(f), "damaged, worked around", escape(r)] for f, r in (inputs.get("notes") or {}).items()]
    if not rows:
        return '<p class="note">All run-folder files were read.</p>'
    return _table(["file", "state", "detail"], rows)


def _phase_rows(folder: RunFolder) -> list[list[str]]:
    """One row per phase with offsets from the run start and its extra settings (users, rate)."""
    t0 = folder.t0 or 0.0
    return [
        [
            escape(p.name), f"{p.start - t0:.1f}", f"{p.end - t0:.1f}", f"{p.end - p.start:.1f}",
            escape(" ".join(f"{k}={v}" for k, v in p.extra.items())),
        ]
        for p in folder.phases
    ]  # fmt: skip


def _clocks_section(folder: RunFolder, criteria: Criteria) -> str:
    """Each worker's clock offset to the master (run.json ``clocks``) and what the latency criteria tolerate."""
    clocks = worker_clocks(folder)
    if not clocks.recorded:
        return "<h2>Clocks</h2><p class='note'>run.json records no clock offsets (a run from before they were).</p>"
    if not clocks.workers and not clocks.estimates:
        return "<h2>Clocks</h2><p class='note'>One Locust process: every time was taken on the master's clock.</p>"
    fraction = float(criteria["clocks"]["max_offset_fraction"])
    tolerances = {
        cid: tolerance_ms(clock_threshold_ms(cid, criteria), fraction) for cid in criteria["clocks"]["affects"]
    }
    tightest = min(tolerances.values(), default=None)
    rows = [
        [
            escape(c.node), f"{c.offset_s * 1000.0:+.3f}", f"{c.rtt_s * 1000.0:.3f}", str(c.samples),
            f"{c.bound_ms:.3f}", _badge("fail" if tightest is not None and c.bound_ms > tightest else "pass"),
        ]
        for c in clocks.estimates
    ]  # fmt: skip
    note = (
        f"Offset = master clock minus worker clock, from the ping with the shortest round trip; a worker's clock "
        f"is off by up to |offset| + rtt/2. Latency criteria tolerate up to {fraction:.0%} of their threshold: "
        + ", ".join(f"{escape(cid)} {t:g} ms" for cid, t in tolerances.items())
        + "."
    )
    if clocks.unknown:
        note += f" {clocks.unknown} of the run's {clocks.workers} worker(s) have no estimate."
    table = _table(["worker", "offset ms", "rtt ms", "pings", "up to ms off", "within tolerance"], rows)
    return f"<h2>Clocks</h2><p class='note'>{note}</p>{table if rows else ''}"


def _network_section(folder: RunFolder) -> str:
    """The nemesis fault windows (the figures hatch them in red), or nothing when the run had none."""
    try:
        net = network(folder)
    except Unsupported as exc:
        return f"<h2>Network faults</h2><p class='note'>{escape(str(exc))}</p>"
    if net is None:
        return ""
    t0 = folder.t0 or 0.0
    rows = [
        [
            escape(w.fault), f"{w.start - t0:.1f}", f"{w.end - t0:.1f}" + (" (run end)" if w.until_end else ""),
            escape(", ".join(sorted(w.routes, key=lambda r: (len(r), r)))),
            escape(" ".join(f"{k}={v:g}" for k, v in (w.params or {}).items())),
            escape(", ".join(f"{k} {v}" for k, v in w.counts.items() if isinstance(v, int) and v)),
        ]
        for w in net.windows
    ]  # fmt: skip
    table = _table(["fault", "start s", "end s", "routes", "params", "did"], rows)
    return f"<h2>Network faults</h2><p class='note'>nemesis.jsonl; hatched in red in the figures.</p>{table}"


def render_report(folder: RunFolder, document: dict[str, Any], criteria: Criteria, trend: Trend | None = None) -> str:
    """The whole report page as a string; ``trend`` is the comparable history behind REGRESSION."""
    scenario = document["scenarios"][0]
    regression: dict[str, Any] = next((c for c in scenario.get("criteria", []) if c.get("id") == CRITERION), {})
    generator = scenario.get("generator") or {}
    phase_rows = _phase_rows(folder)
    figures = "".join(
        f'<figure id="{plot.fig_id}"><figcaption>{escape(plot.title)}</figcaption>'
        f'<img alt="{escape(plot.title)}" src="data:image/png;base64,{plot.png_b64}">'
        + (f'<p class="note">{escape(plot.caption)}</p>' if plot.caption else "")
        + "</figure>"
        for plot in render_plots(folder, criteria)
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>lqharness report: {escape(str(scenario.get('name')))}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(str(scenario.get('name')))} {_badge(scenario.get('verdict'), 'badge')}</h1>",
        f'<p class="note">{escape(str(folder.profile.get("title", "")))}</p>',
        _run_facts(folder, document),
        "<h2>Verdict</h2>",
        f'<p class="note">Criteria from {escape(str(scenario.get("criteria_source")))}. Load generator: '
        f"{escape(str(generator.get('state')))} — {escape(str(generator.get('evidence')))}; "
        f"{escape(str((generator.get('lag') or {}).get('evidence', 'event-loop lag not assessed')))}</p>",
        _criteria_table(scenario),
        trend_section(trend, regression.get("metrics")),
        "<h2>Delivery</h2>",
        _delivery_table(scenario),
        "<h3>Anomaly witnesses</h3>",
        _witnesses(folder),
        _degradation(scenario),
        "<h2>Phases</h2>",
        _table(["phase", "start s", "end s", "duration s", "settings"], phase_rows)
        if phase_rows
        else '<p class="note">run.json records no phases.</p>',
        _clocks_section(folder, criteria),
        _network_section(folder),
        "<h2>Inputs</h2>",
        _inputs(scenario),
        "<h2>Over time</h2>",
        figures,
        "</body></html>",
    ]
    return "\n".join(parts)
