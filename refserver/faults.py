"""Deterministic misbehaviour for ``lqharness serve --fault SPEC``: each fault proves a check of the judge.

A spec is ``name[:key=value[,key=value]]``. Counting faults act on a subscription's Nth, 2Nth, ...
change notification (counted per subscription from 1), so their effect is predictable on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_SPECS: dict[str, dict[str, int | None]] = {
    # name: {parameter: default (None = required)}
    "drop": {"every": None},
    "duplicate": {"every": None},
    "reorder": {"every": None},
    "delay": {"ms": None, "every": 1},
    "stale-old": {"every": 1},
    "corrupt-new": {"every": 1},
    "sub-error": {"every": None},
    "no-deleted": {},
    "skew-changes": {"by": None},
    "leak": {"bytes": None},
    "keep-closed": {},
    "stall": {"after": None, "for": None},
    "crash": {"after": None},
}
_POSITIVE = {"every", "ms", "bytes", "for"}

FAULT_HELP = (
    "misbehave on purpose (repeatable): drop:every=N, duplicate:every=N, reorder:every=N, "
    "delay:ms=N[,every=K], stale-old[:every=N], corrupt-new[:every=N], sub-error:every=N, no-deleted, "
    "skew-changes:by=N, leak:bytes=N, keep-closed, stall:after=S,for=T, crash:after=S"
)


class FaultSpecError(ValueError):
    """A ``--fault`` value that does not parse; the message is one line for the user."""


@dataclass(slots=True)
class Faults:
    """The active faults and their parameters, plus the memory ``leak`` holds on to."""

    active: dict[str, dict[str, int]] = field(default_factory=dict)
    leaked: list[bytearray] = field(default_factory=list)

    def on(self, name: str) -> bool:
        return name in self.active

    def hits(self, name: str, n: int) -> bool:
        """Whether a counting fault fires on the ``n``-th notification of a subscription."""
        params = self.active.get(name)
        return params is not None and n % params["every"] == 0

    def param(self, name: str, key: str) -> int:
        return self.active[name][key]

    def leak(self) -> None:
        """Keep ``bytes`` bytes forever (the ``leak`` fault), once per notification."""
        params = self.active.get("leak")
        if params is not None:
            self.leaked.append(bytearray(params["bytes"]))

    @property
    def skew(self) -> int:
        params = self.active.get("skew-changes")
        return params["by"] if params else 0

    def describe(self) -> str:
        return ", ".join(
            name + (":" + ",".join(f"{k}={v}" for k, v in p.items()) if p else "") for name, p in self.active.items()
        )


def parse_faults(specs: list[str]) -> Faults:
    """Parse ``--fault`` values; raises ``FaultSpecError`` with a one-line message."""
    faults = Faults()
    for spec in specs:
        name, _, rest = spec.strip().partition(":")
        if name not in _SPECS:
            raise FaultSpecError(f"unknown fault '{name}' in '{spec}' (known: {', '.join(_SPECS)})")
        allowed = _SPECS[name]
        params: dict[str, int] = {}
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if not eq or key not in allowed:
                raise FaultSpecError(f"bad parameter '{item}' in fault '{spec}' (expects {_usage(name)})")
            try:
                number = int(value)
            except ValueError:
                raise FaultSpecError(f"parameter {key} of fault '{spec}' must be an integer") from None
            if number < 0 or (key in _POSITIVE and number == 0):
                raise FaultSpecError(f"parameter {key} of fault '{spec}' is out of range")
            params[key] = number
        for key, default in allowed.items():
            if key not in params:
                if default is None:
                    raise FaultSpecError(f"fault '{spec}' needs {key}= (expects {_usage(name)})")
                params[key] = default
        if name in faults.active:
            raise FaultSpecError(f"fault '{name}' given twice")
        faults.active[name] = params
    return faults


def _usage(name: str) -> str:
    params = _SPECS[name]
    return name + (":" + ",".join(f"{k}=N" for k in params) if params else "")
