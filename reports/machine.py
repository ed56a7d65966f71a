"""The machine fingerprint: what makes two runs' numbers comparable on the hardware side.

CPU model, core count, memory and kernel; the fingerprint is a short hash of them, so a
history shared by several CI runners keeps each machine's baselines apart.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import Any

import orjson
import psutil

MIB = 1024 * 1024
FINGERPRINT_KEYS = ("cpu_model", "cores", "memory_mib", "kernel")


def _cpu_model() -> str:
    """The first ``model name`` of /proc/cpuinfo, else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_facts() -> dict[str, Any]:
    """This machine's CPU model, logical cores, memory (MiB) and kernel release."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_mib": int(psutil.virtual_memory().total // MIB),
        "kernel": platform.release(),
    }


def fingerprint(facts: dict[str, Any]) -> str:
    """A 16-hex-digit hash of the fingerprint keys of ``facts``: equal machines, equal fingerprints."""
    picked = {key: facts.get(key) for key in FINGERPRINT_KEYS}
    return hashlib.sha256(orjson.dumps(picked, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The fingerprint keys on which two machines differ, as ``key a vs b`` texts."""
    return [f"{key} {a.get(key)!r} vs {b.get(key)!r}" for key in FINGERPRINT_KEYS if a.get(key) != b.get(key)]
