"""Installing and launching the Parse target without running it: the cache key, and the one-line errors
that name the Debian package when node, npm or PostgreSQL is missing or too old."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.orchestration import parse_process


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No tools on PATH, an empty install cache, no Debian PostgreSQL: a machine without the prerequisites."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(parse_process, "DEBIAN_PG", tmp_path / "no-postgresql")
    return empty


def _fake_tool(folder: Path, name: str, output: str) -> None:
    tool = folder / name
    tool.write_text(f"#!/bin/sh\necho {output}\n")
    tool.chmod(0o755)


def test_the_install_key_follows_every_pinned_file() -> None:
    sources = parse_process._node_sources()
    assert json.loads(sources["package.json"])["dependencies"] == {
        "express": "5.2.1",
        "parse-server": parse_process.PARSE_VERSION,
        "router": "2.2.0",  # the /batch workaround: 2.3.0 breaks POST /parse/batch
    }
    key = parse_process.install_key(sources)
    assert key == parse_process.install_key(dict(sources))
    for name in parse_process.NODE_FILES:
        assert parse_process.install_key({**sources, name: sources[name] + b"\n"}) != key


def test_the_cache_lives_outside_the_clone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert parse_process.cache_root() == tmp_path / "livequery-harness" / "parse"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert parse_process.cache_root() == Path.home() / ".cache" / "livequery-harness" / "parse"


def test_missing_node_names_the_debian_package(bare: Path) -> None:
    with pytest.raises(HarnessError, match=r"^node not found: install the Debian package nodejs"):
        parse_process.ensure_installed(progress=lambda _msg: None)


def test_missing_npm_names_the_debian_package(bare: Path) -> None:
    _fake_tool(bare, "node", "v20.20.2")
    with pytest.raises(HarnessError, match=r"^npm not found: install the Debian package npm"):
        parse_process.ensure_installed(progress=lambda _msg: None)


def test_a_node_too_old_for_parse_server_is_one_line(bare: Path) -> None:
    _fake_tool(bare, "node", "v18.20.4")  # Debian 12's own nodejs
    with pytest.raises(HarnessError, match=r"node v18.20.4 cannot run parse-server 9.10.0 \(needs >=20.19 <21"):
        parse_process.ensure_installed(progress=lambda _msg: None)


def test_missing_postgresql_names_the_debian_package(bare: Path) -> None:
    with pytest.raises(HarnessError, match=r"install the Debian package postgresql"):
        parse_process.pg_bindir()


def test_target_up_without_node_is_one_line_and_exit_2(bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["target", "up", "parse", "--dir", str(bare.parent / "t")]) == 2
    err = capsys.readouterr().err
    assert err == "lqharness: error: node not found: install the Debian package nodejs (apt-get install nodejs)\n"


def test_target_down_with_nothing_up_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["target", "down", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no target is up in" in err


def test_run_target_parse_without_node_is_one_line_before_any_run_folder(
    bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "live.inserts", "--target", "parse", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err == "lqharness: error: node not found: install the Debian package nodejs (apt-get install nodejs)\n"
    assert not (tmp_path / "runs").exists()


def test_npm_is_not_needed_once_the_install_is_cached(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(bare, "node", "v20.20.2")
    monkeypatch.setattr(parse_process, "pg_bindir", lambda: bare)
    monkeypatch.setattr(parse_process, "_run_as", lambda: None)
    with pytest.raises(HarnessError, match="^npm not found"):
        parse_process.check_prerequisites()
    done = parse_process.cache_root() / parse_process.install_key(parse_process._node_sources())
    done.mkdir(parents=True)
    (done / parse_process.COMPLETE_MARK).write_text("")
    parse_process.check_prerequisites()


def test_a_cluster_left_in_the_folder_is_one_line_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_process, "ensure_installed", lambda progress: tmp_path)
    monkeypatch.setattr(parse_process, "_tool", lambda name, package: name)
    monkeypatch.setattr(parse_process, "pg_bindir", lambda: tmp_path)
    monkeypatch.setattr(parse_process, "_run_as", lambda: None)
    left = tmp_path / "target" / parse_process.POSTGRES_DIR / "data"
    left.mkdir(parents=True)
    with pytest.raises(HarnessError, match="a PostgreSQL cluster is already in"):
        parse_process.start_parse(tmp_path / "target", progress=lambda _msg: None)
    assert left.is_dir()
