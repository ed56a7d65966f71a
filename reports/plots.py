"""The report's figures, drawn with matplotlib into base64 PNGs so report.html needs no network.

Every figure is always produced: when its data is missing the image says so (with the reason)
instead of the figure vanishing from the report.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reports.criteria import Criteria
from reports.degradation import Degradation, degradation
from reports.measures import MIB
from reports.network import Network, network
from reports.runfolder import DATABASE, DELIVERY, GENERATOR, HISTORY, MONITOR, RunFolder
from reports.verdict import Unsupported

WIDTH, HEIGHT, DPI = 10.0, 3.6, 90
PHASE_COLOURS = {
    "setup": "#e8e8e8", "subscribe": "#dbe9f6", "load": "#fde2c8", "drain": "#e2f0d9", "observe": "#ece2f4",
    "locust": "#fdf1c8",
}  # fmt: skip
STEP_COLOURS = ("#fde2c8", "#fbd0a6")
NETWORK_COLOUR = "#d62728"  # network fault windows: hatched over the phases
TYPE_COLOURS = {"NOTIFY": "#1f77b4", "SQL": "#d62728", "QUERY": "#2ca02c", "Aggregated": "#7f7f7f"}


class NoData(Exception):
    """The figure has nothing to draw; the message says why and is drawn in its place."""


@dataclass(frozen=True, slots=True)
class Plot:
    """One report figure: its element id, title, PNG (base64) and a caption."""

    fig_id: str
    title: str
    png_b64: str
    caption: str


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _placeholder(message: str) -> str:
    fig = Figure(figsize=(WIDTH, 1.2))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#666666", wrap=True)
    return _png(fig)


def _seconds(folder: RunFolder, t: pd.Series) -> pd.Series:
    return t - (folder.t0 or 0.0)


def _shade_phases(ax: Axes, folder: RunFolder) -> None:
    """Shade every phase; label the innermost ones, a label lifted when it would touch the previous."""
    t0 = folder.t0 or 0.0
    phases = list(folder.phases)
    span = max((p.end for p in phases), default=t0) - min((p.start for p in phases), default=t0) or 1.0
    steps = 0
    last_x, lifted = None, False
    for phase in phases:
        if phase.name.startswith("step-"):
            colour = STEP_COLOURS[steps % 2]
            steps += 1
        else:
            colour = PHASE_COLOURS.get(phase.name, "#f0f0f0")
        ax.axvspan(phase.start - t0, phase.end - t0, color=colour, alpha=0.6, lw=0, zorder=0)
        if any(q is not phase and phase.start <= q.start and q.end <= phase.end for q in phases):
            continue  # an umbrella phase (Locust's whole run, say): its parts carry the labels
        x = (phase.start + phase.end) / 2 - t0
        lifted = last_x is not None and x - last_x < 0.06 * span and not lifted
        last_x = x
        ax.text(
            x, 1.07 if lifted else 1.0, phase.name, transform=ax.get_xaxis_transform(),
            ha="center", va="bottom", fontsize=7, color="#555555", clip_on=False,
        )  # fmt: skip


def _network(folder: RunFolder) -> Network | None:
    try:
        return network(folder)
    except Unsupported:
        return None


def _shade_network(ax: Axes, folder: RunFolder) -> None:
    """Hatch every nemesis fault window over the phases and name its fault at the bottom of the axes."""
    net = _network(folder)
    if net is None:
        return
    t0 = folder.t0 or 0.0
    for i, w in enumerate(net.windows):
        ax.axvspan(
            w.start - t0, w.end - t0, facecolor="none", edgecolor=NETWORK_COLOUR, hatch="//", alpha=0.35, lw=0,
            zorder=1,
        )  # fmt: skip
        ax.text(
            w.start - t0, 0.02 + 0.08 * (i % 3),
            f"{w.fault} {next(iter(w.routes))}" if len(w.routes) == 1 else f"{w.fault} ({len(w.routes)} routes)",
            transform=ax.get_xaxis_transform(),
            ha="left", va="bottom", fontsize=7, color=NETWORK_COLOUR, clip_on=True,
        )  # fmt: skip


def _axes(folder: RunFolder, ylabel: str, shade: bool = True) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(WIDTH, HEIGHT))
    ax = fig.add_subplot()
    if shade:
        _shade_phases(ax, folder)
        _shade_network(ax, folder)
    ax.set_xlabel("seconds since run start")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _monitor(folder: RunFolder) -> pd.DataFrame:
    if folder.monitor.empty:
        raise NoData(f"no monitor samples ({folder.why_missing(MONITOR) or 'empty'})")
    return folder.monitor


def _finish(fig: Figure, ax: Axes) -> str:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", fontsize=7, ncol=1 if len(handles) <= 4 else 3, framealpha=0.8)
    return _png(fig)


def memory_plot(folder: RunFolder, criteria: Criteria) -> str:
    frame = _monitor(folder)
    fig, ax = _axes(folder, "MiB")
    x = _seconds(folder, frame["t"])
    drawn = False
    for column, label in (("rss", "RSS"), ("uss", "USS")):
        if column in frame and frame[column].notna().any():
            ax.plot(x, frame[column] / MIB, label=label, lw=1.3)
            drawn = True
    if not drawn:
        raise NoData("monitor samples carry no RSS")
    limit = folder.profile.get("memory_limit_mb")
    if isinstance(limit, int | float) and limit > 0:
        if frame["rss"].max() / MIB >= 0.5 * limit:
            ax.axhline(float(limit), color="#d62728", ls="--", lw=1, label=f"memory limit {limit:g} MiB")
        else:
            ax.set_title(f"memory limit {limit:g} MiB (off scale)", fontsize=8)
    _mark_deaths(ax, folder, frame)
    return _finish(fig, ax)


def _mark_deaths(ax: Axes, folder: RunFolder, frame: pd.DataFrame, label: str = "server gone") -> None:
    dead = frame[frame["dead"]]
    if len(dead):
        ax.axvline(float(dead["t"].iloc[0]) - (folder.t0 or 0.0), color="black", lw=1.5, label=label)


def cpu_plot(folder: RunFolder, criteria: Criteria) -> str:
    frame = _monitor(folder)
    fig, ax = _axes(folder, "CPU %")
    x = _seconds(folder, frame["t"])
    for column, label in (
        ("cpu_core_pct", "server, % of one core"),
        ("cpu_machine_pct", "server, % of machine"),
    ):
        if column in frame and frame[column].notna().any():
            ax.plot(x, frame[column], label=label, lw=1.3)
    gen = folder.generator
    if not gen.empty and "cpu_core_pct" in gen:
        gen = gen[gen["cpu_core_pct"].notna()]  # the Locust processes' lag rows carry no CPU
        for (pid, role), group in gen.groupby(["pid", "role"]):
            ax.plot(
                _seconds(folder, group["t"]),
                group["cpu_core_pct"],
                ls="--",
                lw=1,
                label=f"generator {role} {int(pid)}",
            )
        threshold = float(criteria["generator"]["saturated_core_pct"])
        ax.axhline(threshold, color="#999999", ls=":", lw=1, label=f"generator saturation {threshold:g}%")
    else:
        ax.set_title(f"generator not monitored ({folder.why_missing(GENERATOR) or 'no samples'})", fontsize=8)
    _mark_deaths(ax, folder, frame)
    return _finish(fig, ax)


def fds_plot(folder: RunFolder, criteria: Criteria) -> str:
    frame = _monitor(folder)
    fig, ax = _axes(folder, "count")
    x = _seconds(folder, frame["t"])
    drawn = False
    for column, label in (("fds", "open fds"), ("threads", "threads")):
        if column in frame and frame[column].notna().any():
            ax.plot(x, frame[column], label=label, lw=1.3)
            drawn = True
    if not drawn:
        raise NoData("monitor samples carry no fds or threads")
    return _finish(fig, ax)


def connections_plot(folder: RunFolder, criteria: Criteria) -> str:
    frame = _monitor(folder)
    fig, ax = _axes(folder, "count")
    x = _seconds(folder, frame["t"])
    columns = sorted(c for c in frame.columns if c.startswith("conn_"))
    for column in columns:
        ax.plot(x, frame[column].fillna(0), label=f"TCP {column[5:]}", lw=1.3)
    if "live_count" in frame and frame["live_count"].notna().any():
        ax.plot(x, frame["live_count"], label="live subscriptions", lw=1.3, ls="--")
    elif not columns:
        raise NoData("monitor samples carry no connection counts")
    return _finish(fig, ax)


def database_plot(folder: RunFolder, criteria: Criteria) -> str:
    """The target's database process tree (database.jsonl): summed PSS and RSS, and its CPU on a second axis."""
    frame = folder.database
    if frame.empty:
        why = folder.why_missing(DATABASE)
        raise NoData(f"no database samples ({why})" if why else "the target runs no database the harness started")
    name = next((str(n) for n in frame.get("name", pd.Series(dtype=object)).dropna()), "database")
    fig, ax = _axes(folder, "MiB")
    x = _seconds(folder, frame["t"])
    count = frame["processes"].max() if "processes" in frame else None
    over = f" over up to {int(count)} processes" if count is not None and pd.notna(count) else ""
    for column, label, style in (
        ("pss", f"{name}: PSS summed{over} (its memory)", "-"),
        ("rss", f"{name}: RSS summed (shared pages counted in each process)", ":"),
    ):
        if column in frame and frame[column].notna().any():
            ax.plot(x, frame[column] / MIB, label=label, lw=1.3, ls=style)
    right = ax.twinx()
    if "cpu_core_pct" in frame and frame["cpu_core_pct"].notna().any():
        right.plot(x, frame["cpu_core_pct"], color="#2ca02c", lw=1, label=f"{name}: CPU, % of one core")
    right.set_ylabel("CPU %")
    _mark_deaths(ax, folder, frame, f"{name} gone")
    handles, labels = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(handles + more[0], labels + more[1], loc="upper left", fontsize=7, framealpha=0.8)
    return _png(fig)


def _history(folder: RunFolder) -> pd.DataFrame:
    history = folder.history
    if history.empty or "Timestamp" not in history:
        raise NoData(f"no Locust history ({folder.why_missing(HISTORY) or 'no rows'})")
    typed = history[history["Name"] != "Aggregated"]
    if typed.empty:
        return history.assign(Type="Aggregated")
    return typed


def throughput_plot(folder: RunFolder, criteria: Criteria) -> str:
    rows = _history(folder)
    fig, ax = _axes(folder, "requests/s")
    for kind, group in rows.groupby("Type"):
        per_t = group.groupby("Timestamp")["Requests/s"].sum()
        label = f"{kind or 'untyped'} (writes)" if kind == "SQL" else (kind or "untyped")
        ax.plot(_seconds(folder, per_t.index.to_series()), per_t.values, label=label, lw=1.3,
                color=TYPE_COLOURS.get(kind))  # fmt: skip
    return _finish(fig, ax)


def latency_plot(folder: RunFolder, criteria: Criteria) -> str:
    rows = _history(folder)
    fig, ax = _axes(folder, "ms")
    drawn = False
    styles = {"50%": ":", "95%": "-", "99%": "--"}
    for kind, group in rows.groupby("Type"):
        for column, style in styles.items():
            if column not in group or group[column].isna().all():
                continue
            per_t = group.groupby("Timestamp")[column].max().dropna()
            ax.plot(_seconds(folder, per_t.index.to_series()), per_t.values, ls=style, lw=1.2,
                    color=TYPE_COLOURS.get(kind), label=f"{kind or 'untyped'} p{column[:-1]}")  # fmt: skip
            drawn = True
    if not drawn:
        raise NoData("the Locust history has no latency percentiles")
    ax.axhline(float(criteria["SC-054"]["max_latency_ms"]), color="#1f77b4", lw=0.8, alpha=0.6,
               label=f"SC-054 limit {criteria['SC-054']['max_latency_ms']:g} ms")  # fmt: skip
    return _finish(fig, ax)


def anomalies_plot(folder: RunFolder, criteria: Criteria) -> str:
    if folder.delivery is None:
        raise NoData(f"no delivery summary ({folder.why_missing(DELIVERY)})")
    timeline = [e for e in folder.delivery.get("timeline") or [] if isinstance(e, dict)]
    frame = pd.DataFrame.from_records(timeline) if timeline else pd.DataFrame(columns=["t", "kind", "count"])
    frame["t"] = pd.to_numeric(frame["t"], errors="coerce")
    frame["count"] = pd.to_numeric(frame["count"], errors="coerce").fillna(1)
    frame = frame.dropna(subset=["t"])
    if frame.empty:
        raise NoData("no delivery anomaly recorded: nothing lost, duplicated, reordered or wrong")
    fig, ax = _axes(folder, "cumulative anomalies")
    for kind, group in frame.sort_values("t").groupby("kind"):
        ax.step(_seconds(folder, group["t"]), group["count"].cumsum(), where="post", label=str(kind), lw=1.5,
                marker="o", ms=4)  # fmt: skip
    ax.set_ylim(bottom=0)
    return _finish(fig, ax)


def degradation_plot(folder: RunFolder, criteria: Criteria) -> str:
    curve: Degradation | None = degradation(folder, criteria["report"])
    if curve is None:
        raise NoData("not a ramp run (no step-<n> phases with Locust history): no degradation curve")
    fig = Figure(figsize=(WIDTH, HEIGHT))
    ax = fig.add_subplot()
    xs = list(range(len(curve.points)))
    labels = [f"{p.name}\n{p.users if p.users is not None else ''} users" for p in curve.points]
    ax.bar(xs, [p.writes_per_s for p in curve.points], color="#d62728", alpha=0.35, label="writes/s (SQL)")
    ax.bar(
        xs,
        [p.notify_per_s for p in curve.points],
        color="#1f77b4",
        alpha=0.35,
        width=0.4,
        label="notifications/s",
    )
    ax.set_xticks(xs, labels, fontsize=7)
    ax.set_ylabel("requests/s")
    right = ax.twinx()
    p95 = [p.p95_ms for p in curve.points]
    right.plot(xs, p95, color="black", marker="o", label="NOTIFY p95 (ms)")
    right.plot(xs, [p.figures.write_p95_ms for p in curve.points], color="#d62728", marker="s", label="write p95 (ms)")
    right.axhline(curve.slo_p95_ms, color="black", ls=":", lw=1, label=f"SLO p95 {curve.slo_p95_ms:g} ms")
    right.set_ylabel("p95 ms")
    if curve.first_break is not None:
        index = next(i for i, p in enumerate(curve.points) if p.name == curve.first_break)
        ax.axvline(index - 0.5, color="#d62728", lw=2)
        capacity = "none" if curve.capacity_writes_per_s is None else f"{curve.capacity_writes_per_s:.0f} writes/s"
        ax.set_title(f"SLO breaks at {curve.first_break}; capacity before the break: {capacity}", fontsize=9)
    else:
        ax.set_title(f"SLO held at every judged step (ramp stop: {curve.stop or 'unknown'})", fontsize=9)
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    if all(math.isnan(v) for v in p95):
        right.text(0.5, 0.5, "no NOTIFY latency in the history", transform=right.transAxes, ha="center")
    return _png(fig)


FIGURES: tuple[tuple[str, str, Callable[[RunFolder, Criteria], str]], ...] = (
    ("fig-memory", "Server memory (RSS, USS)", memory_plot),
    ("fig-cpu", "CPU: server and load generator", cpu_plot),
    ("fig-fds", "Open file descriptors and threads", fds_plot),
    ("fig-connections", "Connections on the server port and live subscriptions", connections_plot),
    ("fig-database", "The target's database (PostgreSQL for Parse): memory and CPU", database_plot),
    ("fig-throughput", "Throughput by request type", throughput_plot),
    ("fig-latency", "Latency percentiles by request type", latency_plot),
    ("fig-anomalies", "Delivery anomalies over time", anomalies_plot),
    ("fig-degradation", "Degradation curve per ramp step", degradation_plot),
)


def render_plots(folder: RunFolder, criteria: Criteria) -> list[Plot]:
    """All report figures in order; a figure without data (or that fails to draw) shows the reason."""
    out = []
    for fig_id, title, draw in FIGURES:
        try:
            out.append(Plot(fig_id, title, draw(folder, criteria), ""))
        except NoData as exc:
            out.append(Plot(fig_id, title, _placeholder(str(exc)), str(exc)))
        except Exception as exc:  # one bad series must not cost the whole report
            reason = f"could not draw: {type(exc).__name__}: {exc}"
            out.append(Plot(fig_id, title, _placeholder(reason), reason))
    return out
