"""Find a Chromium-family browser for the report render test, or say clearly why there is none.

The first of ``BROWSERS`` on PATH wins; when none is there, scripts/install-chromium.sh is tried
once. Without a browser the caller skips on a developer machine but fails in CI (``CI`` set, or
``LQH_REQUIRE_BROWSER=1``), so CI cannot go green without rendering the report (audit M7).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
INSTALLER = Path(__file__).resolve().parents[2] / "scripts" / "install-chromium.sh"
BASH = shutil.which("bash") or "/bin/bash"


def find_browser() -> Path | None:
    """The first Chromium-family browser on PATH, or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def browser_required() -> bool:
    """Whether a missing browser fails the test (CI) instead of skipping it (a developer machine)."""
    return bool(os.environ.get("CI")) or os.environ.get("LQH_REQUIRE_BROWSER") == "1"


def chromium(installer: Path = INSTALLER) -> Path:
    """The browser, installing Chromium with the project script if none is on PATH; when that cannot be
    done, skip, or fail where a browser is required."""
    binary = find_browser()
    if binary is not None:
        return binary
    try:
        result = subprocess.run([BASH, str(installer)], capture_output=True, text=True, timeout=600)
        output = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        why = f"scripts/install-chromium.sh: {output[0]}"
    except subprocess.TimeoutExpired:
        why = "scripts/install-chromium.sh did not finish in 600 s"
    except OSError as exc:
        why = f"scripts/install-chromium.sh could not run: {exc}"
    binary = find_browser()
    if binary is not None:
        return binary
    message = f"no browser on PATH (looked for {', '.join(BROWSERS)}); {why}"
    if browser_required():
        pytest.fail(message)
    pytest.skip(message)
