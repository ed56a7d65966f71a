"""The short verdict table printed on the terminal after a run (at most 15 lines per scenario)."""

from __future__ import annotations

from typing import Any

from reports.verdict import FAIL, INCONCLUSIVE, NA, brief

WIDTHS = (12, 12, 40, 34)
SHORT = {
    "duplicates": "dup", "out_of_order": "ooo", "unexpected_disconnects": "drops", "lingering_subscriptions": "subs",
    "lingering_sockets": "sockets", "server_changes": "server", "alive_to_end": "alive",
    "worst_step_error_ratio": "worst_step", "_value_errors": "", "max_": "", "min_": "",
}  # fmt: skip
MAX_LINES = 15
REASON_WIDTH = 100


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _short(value: Any) -> str:
    text = brief(value)
    for long, short in SHORT.items():
        text = text.replace(long, short)
    return text


def _row(cells: tuple[str, ...]) -> str:
    return "  " + "  ".join(_cut(v, w).ljust(w) for v, w in zip(cells, WIDTHS, strict=True)).rstrip()


def _clocks_line(clocks: Any) -> str | None:
    """The workers' clock offsets in one line (None for a single process, whose only clock is the master's)."""
    if not isinstance(clocks, dict):
        return None
    found = clocks.get("workers")
    workers: dict[str, Any] = found if isinstance(found, dict) else {}
    shown = [
        f"{node} {float(c['offset_ms']):+.3f} ms (rtt {float(c['rtt_ms']):.3f}, {c.get('samples')} pings)"
        for node, c in workers.items()
        if isinstance(c, dict)
        and isinstance(c.get("offset_ms"), int | float)
        and isinstance(c.get("rtt_ms"), int | float)
    ]
    unknown = clocks.get("unknown")
    if isinstance(unknown, int) and unknown:
        shown.append(f"{unknown} worker(s) unknown")
    return f"clocks: {'; '.join(shown)}" if shown else None


def summary_table(document: dict[str, Any]) -> str:
    """A column header, then per scenario its verdict and one row per criterion (criterion, verdict, value,
    threshold); failed and inconclusive ones get a reason line while the scenario stays within 15 lines.
    When the rows alone would pass 15 lines, the n/a criteria are only named on the scenario's line."""
    lines = [_row(("criterion", "verdict", "value", "threshold"))]
    for scenario in document.get("scenarios", []):
        criteria = scenario.get("criteria", [])
        head = f"{scenario.get('name')}: {str(scenario.get('verdict')).upper()}"
        skipped = [str(c.get("id")) for c in criteria if c.get("verdict") == NA]
        if 1 + len(criteria) > MAX_LINES and skipped:
            criteria = [c for c in criteria if c.get("verdict") != NA]
            head += f"  (n/a: {', '.join(skipped)})"
        lines.append(head)
        spare = MAX_LINES - 1 - len(criteria)
        clocks = _clocks_line(scenario.get("clocks"))
        if clocks and spare > 0:
            lines.append("    " + _cut(clocks, REASON_WIDTH))
            spare -= 1
        for c in criteria:
            cells = (
                str(c.get("id")),
                str(c.get("verdict")),
                _short(c.get("value")),
                _short(c.get("threshold")),
            )
            lines.append(_row(cells))
            if spare > 0 and c.get("verdict") in (FAIL, INCONCLUSIVE) and c.get("evidence"):
                lines.append("    " + _cut(str(c["evidence"]), REASON_WIDTH))
                spare -= 1
    lines.append(f"verdict: {str(document.get('verdict')).upper()}")
    return "\n".join(lines)
