"""The trend section: each tracked measurement over the comparable history, with the baseline, the
noise band and this run marked; in report.html and, for a scenario without a run, in
``lqharness history --html FILE``.
"""

from __future__ import annotations

import math
import time
from html import escape
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from reports.plots import WIDTH, Plot, _placeholder, _png
from reports.regression import Trend, change_text
from reports.tracked import BY_NAME, TRACKED
from reports.verdict import PASS, brief

COLUMNS = 3
MAX_RUNS = 60  # the newest runs drawn in a trend; the baseline and bands come from fewer


def _series(trend: Trend, name: str) -> list[tuple[int, float, bool]]:
    """(position, value, passed) of the history runs that have ``name``."""
    runs = trend.runs[-MAX_RUNS:]
    return [(i, r.metrics[name], r.verdict == PASS) for i, r in enumerate(runs) if name in r.metrics]


def tracked_names(trend: Trend) -> list[str]:
    """The measurements with at least one value in the history or the current run, in catalogue order."""
    current = trend.current.metrics if trend.current else {}
    return [t.name for t in TRACKED if t.name in current or any(t.name in r.metrics for r in trend.runs)]


def trend_plot(trend: Trend) -> Plot:
    """One figure with a small panel per tracked measurement."""
    names = tracked_names(trend)
    title = "Trends over the comparable history"
    if not names:
        reason = "no tracked measurement recorded yet"
        return Plot("fig-trend", title, _placeholder(reason), reason)
    rows = math.ceil(len(names) / COLUMNS)
    fig = Figure(figsize=(WIDTH, 2.3 * rows))
    count = len(trend.runs[-MAX_RUNS:])
    for index, name in enumerate(names):
        ax = fig.add_subplot(rows, COLUMNS, index + 1)
        points = _series(trend, name)
        if points:
            xs, ys, ok = zip(*points, strict=True)
            ax.plot(xs, ys, color="#1f77b4", lw=1, marker="o", ms=3, label="history")
            bad = [(x, y) for x, y, good in points if not good]
            if bad:
                ax.plot(*zip(*bad, strict=True), ls="", marker="x", color="#7f7f7f", ms=5, label="not passing")
        base = trend.baseline.get(name)
        if base is not None:
            band = trend.bands.get(name, 0.0)
            ax.axhline(base, color="#2ca02c", ls="--", lw=1, label="baseline")
            if band > 0:
                ax.axhspan(base - band, base + band, color="#2ca02c", alpha=0.15, lw=0, label="noise band")
        if trend.current is not None and name in trend.current.metrics:
            ax.plot([count], [trend.current.metrics[name]], ls="", marker="*", ms=11, color="#d62728",
                    label="this run")  # fmt: skip
        ax.set_title(f"{BY_NAME[name].label} ({BY_NAME[name].unit})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if index == 0:
            ax.legend(fontsize=6, loc="best")
    fig.supxlabel("comparable runs, oldest first", fontsize=8)
    fig.tight_layout()
    caption = f"{len(trend.runs)} comparable run(s); baseline: {trend.baseline_kind}"
    return Plot("fig-trend", title, _png(fig), caption)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def _cell(value: Any, unit: str = "") -> str:
    return escape(f"{brief(value)} {unit}".strip()) if value is not None else "-"


def trend_table(trend: Trend, changes: list[dict[str, Any]] | None = None) -> str:
    """Per measurement: baseline, band, latest (or this run's) value, change and limit."""
    by_name = {c["name"]: c for c in changes or []}
    rows = []
    for name in tracked_names(trend):
        t = BY_NAME[name]
        change = by_name.get(name)
        last = trend.current.metrics.get(name) if trend.current else next(
            (r.metrics[name] for r in reversed(trend.runs) if name in r.metrics), None
        )  # fmt: skip
        if change is None:
            judged, shift = "-", "-"
        else:
            limit = f"limit {brief(change['limit_pct'])}%" if change["limit_pct"] > 0 else "trend only"
            shift = f"{change_text(change['change_pct'])} ({limit})"
            judged = '<span class="v fail">regressed</span>' if change["regressed"] else "ok"
        rows.append([
            escape(t.label), _cell(trend.baseline.get(name), t.unit), _cell(trend.bands.get(name), t.unit),
            _cell(last, t.unit), escape(shift), judged,
        ])  # fmt: skip
    head = ["measurement", "baseline", "noise band ±", "this run" if trend.current else "latest", "change", ""]
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


def trend_section(trend: Trend | None, changes: list[dict[str, Any]] | None = None) -> str:
    """The report's "Trend" section; without a comparable history it says so."""
    if trend is None:
        return (
            '<h2 id="trend">Trend</h2><p class="note">No comparable history to draw a trend from '
            "(see the REGRESSION criterion for why).</p>"
        )
    plot = trend_plot(trend)
    runs = trend.runs
    span = f"{_when(runs[0].facts.started_at)} .. {_when(runs[-1].facts.started_at)}" if runs else "-"
    facts = (
        f"{len(runs)} comparable run(s) of {trend.scenario} ({trend.profile}) on {trend.target} "
        f"{trend.target_version}, machine {trend.fingerprint}, {span}; baseline: {trend.baseline_kind}."
    )
    return (
        f'<h2 id="trend">Trend</h2><p class="note">{escape(facts)}</p>'
        + trend_table(trend, changes)
        + f'<figure id="{plot.fig_id}"><figcaption>{escape(plot.title)}</figcaption>'
        f'<img alt="{escape(plot.title)}" src="data:image/png;base64,{plot.png_b64}">'
        f'<p class="note">{escape(plot.caption)}</p></figure>'
    )


def trend_page(trend: Trend, css: str) -> str:
    """A self-contained page with one scenario's trend (``lqharness history --html FILE``)."""
    title = f"lqharness history: {trend.scenario}"
    return "\n".join([
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>",
        f"<style>{css}</style></head><body><h1>{escape(title)}</h1>",
        trend_section(trend),
        "</body></html>",
    ])  # fmt: skip
