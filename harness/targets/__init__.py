"""Target drivers, chosen by name: ``create_target(spec)`` is the only way the harness gets one.

The interface every driver implements, and the values that cross it, are in ``harness.targets.base``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.targets.base import Target, TargetError

if TYPE_CHECKING:
    from harness.plan import TargetSpec

__all__ = ["DRIVERS", "create_target"]

# driver name -> "module:class"; "ref" is the embedded reference server, which speaks KalamDB v1.
DRIVERS: dict[str, str] = {
    "kalamdb": "harness.targets.kalamdb:KalamTarget",
    "parse": "harness.targets.parse:ParseTarget",
    "ref": "harness.targets.kalamdb:KalamTarget",
}


def create_target(spec: TargetSpec) -> Target:
    """Build the driver named by ``spec.name``; an unknown name or a bad URL is a one-line HarnessError."""
    path = DRIVERS.get(spec.name)
    if path is None:
        raise HarnessError(f"unknown target {spec.name!r}; known: {', '.join(sorted(DRIVERS))}")
    module_name, _, class_name = path.partition(":")
    driver = getattr(importlib.import_module(module_name), class_name)
    try:
        return driver(spec)
    except TargetError as exc:
        raise HarnessError(f"target {spec.name!r}: {exc}") from None
