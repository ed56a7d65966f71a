"""The target packages' public surface: what ``__all__`` promises exists, and the driver exports only its entry."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import harness.targets
import harness.targets.kalamdb

MODULES = ["harness.targets", "harness.targets.base"] + [
    f"harness.targets.kalamdb.{m.name}" for m in pkgutil.iter_modules(harness.targets.kalamdb.__path__)
]


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_an_all_of_names_it_defines(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, name
    assert [n for n in module.__all__ if not hasattr(module, n)] == []


def test_the_driver_exports_its_target_and_the_registry_names_it() -> None:
    assert harness.targets.kalamdb.__all__ == ["KalamTarget"]
    assert set(harness.targets.DRIVERS.values()) == {
        "harness.targets.kalamdb:KalamTarget",
        "harness.targets.parse:ParseTarget",
    }
