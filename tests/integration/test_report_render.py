"""report.html opened in headless Chromium: every figure is in the rendered DOM with its image, and the
page paints (the screenshot is not blank).

The browser is found by ``tests.support.browser.chromium``: it skips on a developer machine
without one, and fails in CI (``CI`` set, or ``LQH_REQUIRE_BROWSER=1``).
"""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from reports.judge import judge_run
from tests.support.browser import chromium
from tests.support.figures import FIGURE_IDS
from tests.support.synthetic import T0, Synthetic, ramp_phases, write_run

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
]  # fmt: skip


class RenderedFigures(HTMLParser):
    """Figure ids in the rendered DOM and the image elements inside each."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, int] = {}
        self.current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self.current = a.get("id") or ""
            self.figures[self.current] = 0
        elif tag in ("img", "svg") and self.current is not None:
            if tag == "svg" or str(a.get("src", "")).startswith("data:image/"):
                self.figures[self.current] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self.current = None


def run_chromium(binary: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(binary), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(900)
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    binary = chromium()
    p95 = [10.0, 25.0, 80.0]

    def notify_p95(t: float) -> float:
        return p95[min(max(int((t - 10) // 20), 0), len(p95) - 1)]

    spec = Synthetic(
        phases=ramp_phases(p95),
        notify_p95_ms=notify_p95,
        rss_mib=lambda t: 100.0 + 0.2 * t,
        totals={"lost": 3, "duplicates": 1},
        timeline=[{"t": T0 + 25, "kind": "lost", "count": 2}, {"t": T0 + 50, "kind": "lost", "count": 1},
                  {"t": T0 + 40, "kind": "duplicates", "count": 1}],
    )  # fmt: skip
    run_dir = write_run(tmp_path / "runs", spec)
    assert judge_run(run_dir, quiet=True) == 1
    url = (run_dir / "report.html").resolve().as_uri()

    dom = run_chromium(binary, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = RenderedFigures()
    parsed.feed(dom.stdout)
    assert list(parsed.figures) == FIGURE_IDS
    for fig_id in FIGURE_IDS:
        assert parsed.figures[fig_id] >= 1, f"{fig_id} has no image in the rendered DOM"

    shot = tmp_path / "report.png"
    result = run_chromium(binary, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,4000", url)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 4000)
        grey = image.convert("L")
        low, high = grey.getextrema()
        dark = sum(grey.histogram()[:200])  # pixels clearly darker than the white page
    assert high - low > 100, "the screenshot is a single flat colour"
    assert dark > 0.01 * 1280 * 4000, f"only {dark} non-background pixels: the page looks blank"
