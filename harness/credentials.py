"""Passwords from files: the way to hand ``lqharness`` a credential without showing it on a command line.

A command-line argument is visible to every user of the machine (``ps``), so ``--password-file``
and the environment are the documented ways. The file's first line is the password; a file that
others may read is accepted, with a one-line warning, since it is the user's to protect.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

from harness.errors import HarnessError


def read_password_file(path: Path, flag: str) -> str:
    """The password on the first line of ``path`` (``flag`` names the option in errors)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{flag} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise HarnessError(f"{flag} {path}: the file is empty")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"lqharness: warning: {flag} {path} is readable by others (chmod 600 it)", file=sys.stderr)
    return password
