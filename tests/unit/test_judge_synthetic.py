"""Synthetic run folders read back whole, truncated or with files missing, as the judge sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.runfolder import load_run_folder
from tests.support.synthetic import T0, Synthetic, truncate, write_run


def test_synthetic_folder_reads_back_whole(tmp_path: Path) -> None:
    folder = load_run_folder(write_run(tmp_path))
    assert folder.problems == {}
    assert folder.load_window() == (T0 + 10.0, T0 + 110.0)
    assert len(folder.monitor) == 191
    assert {"conn_ESTABLISHED", "conn_TIME_WAIT", "rss", "uss"} <= set(folder.monitor.columns)
    assert set(folder.stats["Type"]) == {"NOTIFY", "SQL", "QUERY", ""}
    assert folder.history["95%"].notna().any()


def test_truncated_jsonl_keeps_the_samples_before_the_cut(tmp_path: Path) -> None:
    path = write_run(tmp_path)
    truncate(path / "monitor.jsonl", 0.5)
    folder = load_run_folder(path)
    assert "monitor.jsonl" not in folder.problems
    assert "unreadable line" in folder.notes["monitor.jsonl"]
    assert 80 < len(folder.monitor) < 100


def test_truncated_json_and_missing_files_are_named(tmp_path: Path) -> None:
    path = write_run(tmp_path, Synthetic(omit={"target.json", "locust_stats.csv"}))
    truncate(path / "delivery.json", 0.6)
    folder = load_run_folder(path)
    assert folder.delivery is None and "truncated" in folder.problems["delivery.json"]
    assert folder.problems["target.json"] == "missing"
    assert folder.stats.empty and folder.problems["locust_stats.csv"] == "missing"


def test_a_missing_folder_is_a_harness_error(tmp_path: Path) -> None:
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="does not exist"):
        load_run_folder(tmp_path / "nope")
