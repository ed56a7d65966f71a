"""Headless Debian Chromium for browser tests: the binary (installed by scripts/install-chromium.sh when missing)
and the launch flags that keep it off the network. No browser is downloaded at run time."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
INSTALLER = Path(__file__).resolve().parents[2] / "scripts" / "install-chromium.sh"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]  # fmt: skip


def chromium() -> Path:
    """The Chromium binary, installing it with the project script if needed; skip if that cannot be done."""
    if not CHROMIUM.exists():
        try:
            result = subprocess.run(["bash", str(INSTALLER)], capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.skip("chromium is not installed and scripts/install-chromium.sh did not finish in 600 s")
        if result.returncode != 0 or not CHROMIUM.exists():
            reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            pytest.skip(f"chromium cannot be installed here: {reason[0]}")
    return CHROMIUM
