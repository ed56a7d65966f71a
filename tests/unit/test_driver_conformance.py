"""Every driver's classes have every member of the target interface (``harness.targets.base``).

Drivers are loaded by name (``harness.targets.DRIVERS``), so the type checker never matches them against
the interface's protocols; a member added to a protocol and missed in one driver otherwise shows up only
when a run reaches it (ParseListener lacked ``replayed``, and every reconnect on Parse raised).
"""

from __future__ import annotations

import importlib
import typing

import pytest

from harness.targets import DRIVERS
from harness.targets.base import Admin, Listener, Target, WriterSession


def _members(protocol: type) -> list[str]:
    """The public methods and properties a protocol declares."""
    return sorted(name for name in vars(protocol) if not name.startswith("_"))


@pytest.mark.parametrize("path", sorted(set(DRIVERS.values())))
def test_each_driver_implements_every_member_of_the_interface(path: str) -> None:
    module, _, name = path.partition(":")
    driver = getattr(importlib.import_module(module), name)
    assert [m for m in _members(Target) if not hasattr(driver, m)] == []
    for method, protocol in (("admin", Admin), ("writer", WriterSession), ("listener", Listener)):
        session = typing.get_type_hints(getattr(driver, method))["return"]
        missing = [m for m in _members(protocol) if not hasattr(session, m)]
        assert missing == [], f"{session.__qualname__} lacks {missing} of {protocol.__name__}"
