"""The Delivery tab of Locust's web UI, driven in headless Chromium (Playwright with Debian's binary): with no
--scenario the form offers the catalogue; a run started from the form shows notifications live in the tab, is
stopped from the UI, and the tab's final numbers equal verdict.json. About 30 s."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.chromium import FLAGS, chromium
from tests.support.plain_locust import free_port, locust_cmd, locust_env, only_run, read_json

playwright = pytest.importorskip("playwright.sync_api")

SCENARIO = "live.replay-gap"  # about 6 s of paced writes by 1 writer to 1 listener: seen live, then stopped
NUMBERS = {"Expected": "expected", "Delivered": "delivered", "Lost": "lost", "Duplicated": "duplicates",
           "Out of order": "out_of_order"}  # fmt: skip


def _wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "Locust exited before its web UI came up"
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"no web UI at {url} after {seconds:g} s")


def _tab_rows(page: Any) -> dict[str, dict[str, str]]:
    """The Delivery tab's table: each row by its first cell, as {column title: cell text}."""
    titles = [t.strip() for t in page.locator("table thead th").all_inner_texts()]
    rows: dict[str, dict[str, str]] = {}
    for row in page.locator("table tbody tr").all():
        cells = [c.strip() for c in row.locator("td").all_inner_texts()]
        if cells:
            rows[cells[0]] = dict(zip(titles, cells, strict=False))
    return rows


def _wait_rows(page: Any, done: Any, seconds: float) -> dict[str, dict[str, str]]:
    deadline = time.monotonic() + seconds
    rows: dict[str, dict[str, str]] = {}
    while time.monotonic() < deadline:
        rows = _tab_rows(page)
        if done(rows):
            return rows
        page.wait_for_timeout(500)
    raise AssertionError(f"the Delivery tab did not get there in {seconds:g} s: {rows}")


def test_delivery_tab_follows_a_run_started_and_stopped_from_the_ui(tmp_path: Path) -> None:
    binary = chromium()
    port = free_port()
    runs = tmp_path / "runs"
    log = (tmp_path / "locust.out").open("wb")
    cmd = locust_cmd("--web-host", "127.0.0.1", "--web-port", str(port), "--runs-dir", str(runs), "--quick")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=locust_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_http(url, proc, 60)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(binary), args=FLAGS, headless=True)
            page = browser.new_page()
            page.goto(url)
            page.fill("input[name=userCount]", "2")
            page.fill("input[name=spawnRate]", "2")
            page.click("text=Custom parameters")
            page.wait_for_selector("#scenario", state="visible")
            options = page.locator("#scenario option").all_inner_texts()
            assert "live.multi-listener" in options and SCENARIO in options  # the catalogue, offered
            page.select_option("#scenario", SCENARIO)
            page.click("button[type=submit]")
            page.click("text=Delivery")
            live = _wait_rows(page, lambda r: r.get("total", {}).get("Received", "0") not in ("", "0"), 60)
            assert live["total"]["Note"] == "live"
            stop = page.locator("button", has_text="Stop")
            if stop.count():
                stop.first.click()
            final = _wait_rows(page, lambda r: "verdict" in r and r.get("total", {}).get("Note") == "final", 90)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
    out = (tmp_path / "locust.out").read_text(errors="replace")
    verdict = read_json(only_run(runs) / "verdict.json")
    delivery = verdict["scenarios"][0]["delivery"]
    shown = {key: int(final["total"][title]) for title, key in NUMBERS.items()}
    assert shown == {key: delivery[key] for key in NUMBERS.values()}, out[-3000:]
    assert shown["delivered"] > 0
    assert final["verdict"]["Note"].startswith(str(verdict["verdict"])), final["verdict"]
