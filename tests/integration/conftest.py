"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.orchestration.server import LocalServer
from tests.support.parse import parse_target_up
from tests.support.refserver import start_refserver


@pytest.fixture(scope="module")
def refserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One reference server, with no faults and the default options, shared by the tests of a module."""
    with start_refserver(tmp_path_factory.mktemp("refserver")) as srv:
        yield srv


@pytest.fixture(scope="session")
def parse_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One Parse Server + PostgreSQL for every Parse test that does not start its own (installing first when
    not cached): started by ``lqharness target up parse``, stopped and checked by ``lqharness target down``.
    Starting the pair is the expensive part of those tests, so they share it."""
    yield from parse_target_up(tmp_path_factory.mktemp("parse") / "target")
