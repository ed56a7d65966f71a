"""``lqharness run`` refuses bad input with one line on stderr and exit 2, before any run folder exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main


def exit_code(args: list[str]) -> int:
    """``lqharness ARGS`` in process: its return value, or the code argparse exits with."""
    try:
        return main(args)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "the following arguments are required: SCENARIO"),
        (["run", "live.nosuch"], "unknown scenario or group 'live.nosuch'"),
        (["run", "live.inserts", "--workers", "-1"], "--workers must be 0 or more"),
        (["run", "live.inserts", "--workers", "two"], "invalid int value: 'two'"),
        (["run", "live.inserts", "--criteria", "missing.toml"], "criteria file not found: missing.toml"),
        (["run", "live.inserts", "--target", "kalamdb"], "--target kalamdb needs --target-url"),
        (["run", "live.inserts", "--target", "parse", "--target-url", "http://127.0.0.1:9/parse"],
         "--target parse starts its own server"),
        (["run", "live.inserts", "--target", "nosuch"], "invalid choice: 'nosuch'"),
        (["run", "live.inserts", "--target-dir", "up"], "--target-dir is for --target parse"),
        (["run", "live.inserts", "--target", "parse", "--target-dir", "up"], "no target is up in up"),
        (["run", "live.inserts", "--fault", "drop:every=2", "--target-url", "http://127.0.0.1:9"],
         "--fault applies to the embedded reference server"),
    ],
)  # fmt: skip
def test_bad_run_input_is_one_line_and_exit_2(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert exit_code(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
