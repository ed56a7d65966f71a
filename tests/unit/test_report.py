"""The judge's outputs besides verdict.json: the terminal table, junit.xml and the HTML report's structure."""

from __future__ import annotations

import base64
import re
import struct
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest

from reports.judge import judge_run
from reports.terminal import summary_table
from tests.support.figures import FIGURE_IDS
from tests.support.synthetic import ALL_CRITERIA, Synthetic, ramp_phases, write_run


class FigureImages(HTMLParser):
    """Collects, per <figure id=...>, the images inside it, and every external resource reference."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, list[str]] = {}
        self.notes: dict[str, str] = {}
        self.current: str | None = None
        self.in_note = False
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key) and not str(a[key]).startswith("data:"):
                self.external.append(str(a[key]))
        if tag == "figure":
            self.current = a.get("id") or ""
            self.figures[self.current] = []
        elif tag in ("img", "svg") and self.current is not None:
            self.figures[self.current].append(str(a.get("src", "svg")))
        elif tag == "p" and self.current is not None and a.get("class") == "note":
            self.in_note = True

    def handle_data(self, data: str) -> None:
        if self.in_note and self.current is not None:
            self.notes[self.current] = self.notes.get(self.current, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self.current = None
        elif tag == "p":
            self.in_note = False


def png_height(src: str) -> int:
    """Pixel height of a ``data:image/png;base64,...`` image, from its IHDR chunk."""
    data = base64.b64decode(src.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int(struct.unpack(">I", data[20:24])[0])


def parse_report(run_dir: Path) -> tuple[str, FigureImages]:
    text = (run_dir / "report.html").read_text()
    parser = FigureImages()
    parser.feed(text)
    return text, parser


def test_terminal_table_is_short_and_names_each_criterion(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, Synthetic(totals={"lost": 2}))
    judge_run(run_dir, quiet=True, report=False)
    document = orjson.loads((run_dir / "verdict.json").read_bytes())
    table = summary_table(document).splitlines()
    assert len(table) <= 17  # the column header, 15 for the scenario, the overall verdict
    assert table[0].split() == ["criterion", "verdict", "value", "threshold"]
    assert table[1] == "stress.synthetic: FAIL  (n/a: REGRESSION)" and table[-1] == "verdict: FAIL"
    for cid in ALL_CRITERIA:
        assert any(line.split()[:1] == [cid] for line in table), cid
    assert any("lost=2" in line for line in table)

    run_dir = write_run(tmp_path / "few", Synthetic(criteria=["SC-051", "SC-054"], totals={"lost": 2}))
    judge_run(run_dir, quiet=True, report=False)
    table = summary_table(orjson.loads((run_dir / "verdict.json").read_bytes())).splitlines()
    assert len(table) == 7 and "lost 2" in table[3]  # the reason line under the failure; REGRESSION last


def test_junit_has_one_testcase_per_criterion_with_counts(tmp_path: Path) -> None:
    spec = Synthetic(criteria=["SC-051", "SC-052", "SC-055", "SC-058"], totals={"duplicates": 4},
                     features=["resume"], omit={"locust_stats.csv"})  # fmt: skip
    run_dir = write_run(tmp_path, spec)
    judge_run(run_dir, quiet=True, report=False)
    root = ET.parse(run_dir / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "stress.synthetic"
    cases = {c.get("name", "").split()[0]: c for c in suite.iter("testcase")}
    assert list(cases) == ["SC-051", "SC-052", "SC-055", "SC-058", "REGRESSION"]
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "1", "3")
    failure = cases["SC-051"].find("failure")
    assert (
        failure is not None and "duplicates 4" in (failure.text or "") and "fail: value" in failure.get("message", "")
    )
    assert cases["SC-052"].find("failure") is None and cases["SC-052"].find("skipped") is None
    skipped = cases["SC-055"].find("skipped")
    assert skipped is not None and skipped.get("message", "").startswith("n/a:")
    skipped = cases["SC-058"].find("skipped")
    assert skipped is not None and "locust_stats.csv: missing" in skipped.get("message", "")


@pytest.mark.timeout(60)
def test_report_has_every_figure_with_an_image_and_no_external_resource(tmp_path: Path) -> None:
    spec = Synthetic(timeline=[{"t": 1_700_000_040.0, "kind": "lost", "count": 2}], totals={"lost": 2})
    run_dir = write_run(tmp_path, spec)
    judge_run(run_dir, quiet=True)
    text, parsed = parse_report(run_dir)
    assert list(parsed.figures) == FIGURE_IDS
    for fig_id, images in parsed.figures.items():
        assert images and images[0].startswith("data:image/png;base64,"), fig_id
    assert parsed.external == []
    assert "<style>" in text and "SC-056" in text and "Memory growth over the stress phase" in text
    assert "not a ramp run" in parsed.notes["fig-degradation"]  # the degradation figure says why it is empty
    # the 2 lost notifications are drawn: no "no data" note, and a full-height plot, not the short placeholder
    assert "fig-anomalies" not in parsed.notes and "no delivery anomaly recorded" not in text
    anomalies = png_height(parsed.figures["fig-anomalies"][0])
    assert anomalies == png_height(parsed.figures["fig-memory"][0])
    assert anomalies > 2 * png_height(parsed.figures["fig-degradation"][0])


@pytest.mark.timeout(60)
def test_report_of_a_run_without_monitor_or_history_says_so(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, Synthetic(omit={"monitor.jsonl", "locust_stats_history.csv", "generator.jsonl"}))
    assert judge_run(run_dir, quiet=True) == 2
    text, parsed = parse_report(run_dir)
    assert list(parsed.figures) == FIGURE_IDS
    assert all(images for images in parsed.figures.values())
    assert len(re.findall(r"no monitor samples \(monitor.jsonl: missing\)", text)) == 4
    assert len(re.findall(r"no Locust history \(locust_stats_history.csv: missing\)", text)) == 2


@pytest.mark.timeout(60)
def test_ramp_report_shows_the_degradation_table(tmp_path: Path) -> None:
    p95 = [10.0, 30.0, 90.0]

    def notify_p95(t: float) -> float:
        return p95[min(max(int((t - 10) // 20), 0), len(p95) - 1)]

    run_dir = write_run(tmp_path, Synthetic(criteria=["SC-060"], phases=ramp_phases(p95), notify_p95_ms=notify_p95))
    judge_run(run_dir, quiet=True)
    text, parsed = parse_report(run_dir)
    assert "Degradation per step" in text and "First step breaking it: <b>step-3</b>" in text
    assert "not a ramp run" not in text
    assert parsed.figures["fig-degradation"]
