"""What the Parse tests share: the install's time bound and the prerequisite check."""

from __future__ import annotations

import os
import shutil

import pytest

from harness.errors import HarnessError
from harness.orchestration import parse_process

INSTALL_SECONDS = 600  # a cold install from the registry; a warm one takes no time


def require_parse() -> None:
    """Skip (fail under CI=true) when node, npm or PostgreSQL is missing, with the one-line reason."""
    try:
        for tool, package in (("node", "nodejs"), ("npm", "npm")):
            if shutil.which(tool) is None:
                raise HarnessError(f"{tool} not found: install the Debian package {package}")
        parse_process.pg_bindir()
    except HarnessError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Parse prerequisites missing under CI: {exc}")
        pytest.skip(str(exc))
