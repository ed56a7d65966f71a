"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.orchestration.server import LocalServer
from tests.support.refserver import start_refserver


@pytest.fixture(scope="module")
def refserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One reference server, with no faults and the default options, shared by the tests of a module."""
    with start_refserver(tmp_path_factory.mktemp("refserver")) as srv:
        yield srv
