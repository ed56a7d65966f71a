"""Row-level policies on SHARED tables (KalamDB 0.7): ``CREATE POLICY`` / ``DROP POLICY`` and what a subscriber sees.

The statement is PostgreSQL-shaped, as upstream's ``CreatePolicyStatement`` parses it::

    CREATE POLICY name ON [ns.]table [AS PERMISSIVE] [FOR ALL|SELECT|INSERT|UPDATE|DELETE]
        [TO PUBLIC | role[, role ...]] [USING (expr)] [WITH CHECK (expr)]
    DROP POLICY [IF EXISTS] name ON [ns.]table

with upstream's refusals: ``AS RESTRICTIVE``, ``USING`` on an INSERT policy, ``WITH CHECK`` on a
SELECT or DELETE policy, a target that is no role class (a user name); only service, dba and
system may create or drop policies. Targets default to PUBLIC and the command to ALL.

Under 0.7 a SHARED-table subscription is admitted for any authenticated role; a dba or system
subscriber sees every row, any other one the rows that some ALL or SELECT policy aimed at PUBLIC
or its role lets through (``USING``, ``CURRENT_USER()`` being the subscriber); with no such policy
it sees none (fails closed). ``docs/kalamdb-0.7.md`` says which of this upstream code confirms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from refserver.dialect import Stmt
from refserver.errors import SqlError

COMMANDS = ("ALL", "SELECT", "INSERT", "UPDATE", "DELETE")
TARGET_ROLES = ("user", "service", "dba", "system")
BYPASS_ROLES = ("dba", "system")
DENY_ALL = "1 = 0"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_CREATE = re.compile(
    rf"^\s*CREATE\s+POLICY\s+(?P<name>{_NAME})\s+ON\s+(?P<table>{_NAME}(?:\.{_NAME})?)"
    r"(?:\s+AS\s+(?P<kind>\w+))?(?:\s+FOR\s+(?P<command>\w+))?"
    r"(?:\s+TO\s+(?P<targets>[A-Za-z_][\w\s,]*?))?(?=\s+USING\b|\s+WITH\s+CHECK\b|\s*;?\s*$)",
    re.I | re.S,
)
_DROP = re.compile(
    rf"^\s*DROP\s+POLICY\s+(?P<if_exists>IF\s+EXISTS\s+)?(?P<name>{_NAME})\s+ON\s+(?P<table>{_NAME}(?:\.{_NAME})?)\s*;?\s*$",
    re.I | re.S,
)


@dataclass(slots=True)
class CreatePolicy(Stmt):
    """A parsed ``CREATE POLICY``; ``namespace`` is None when the table is not qualified."""

    name: str
    namespace: str | None
    table: str
    command: str
    targets: tuple[str, ...]
    using_sql: str | None
    check_sql: str | None


@dataclass(slots=True)
class DropPolicy(Stmt):
    """A parsed ``DROP POLICY``."""

    name: str
    namespace: str | None
    table: str
    if_exists: bool


@dataclass(frozen=True, slots=True)
class Policy:
    """One stored policy of a table."""

    name: str
    table_key: str
    command: str
    targets: tuple[str, ...]
    using_sql: str | None
    check_sql: str | None

    def admits(self, role: str) -> bool:
        """Whether this policy lets ``role``'s subscribers read rows (an ALL or SELECT policy aimed at them)."""
        aimed = "public" in self.targets or role in self.targets
        return aimed and self.command in ("ALL", "SELECT") and self.using_sql is not None


def _split(table: str) -> tuple[str | None, str]:
    ns, _, name = table.rpartition(".")
    return (ns.lower() or None), name.lower()


def _clauses(rest: str) -> dict[str, str]:
    """``USING (...)`` and ``WITH CHECK (...)`` from the text after the policy's header (balanced parentheses)."""
    out: dict[str, str] = {}
    text = rest.strip().rstrip(";").strip()
    while text:
        match = re.match(r"(USING|WITH\s+CHECK)\s*\(", text, re.I)
        if match is None:
            raise SqlError("INVALID_SQL", f"CREATE POLICY: unexpected {text[:40]!r}")
        key = "using" if match.group(1).upper() == "USING" else "check"
        if key in out:
            raise SqlError("INVALID_SQL", f"CREATE POLICY: {match.group(1).upper()} given twice")
        depth, start = 1, match.end()
        i = start
        while i < len(text) and depth:
            if text[i] == "'":
                i = text.index("'", i + 1) if "'" in text[i + 1 :] else len(text)
            elif text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
            i += 1
        if depth:
            raise SqlError("INVALID_SQL", "CREATE POLICY: unbalanced parentheses")
        out[key] = text[start : i - 1].strip()
        text = text[i:].strip()
    return out


def parse_create_policy(sql: str) -> CreatePolicy:
    """A ``CREATE POLICY`` statement, refused as upstream refuses it."""
    head = _CREATE.match(sql)
    if head is None:
        raise SqlError("INVALID_SQL", "CREATE POLICY: expected CREATE POLICY name ON table ...")
    kind = (head.group("kind") or "PERMISSIVE").upper()
    if kind == "RESTRICTIVE":
        raise SqlError("INVALID_SQL", "RESTRICTIVE policies are not supported")
    if kind != "PERMISSIVE":
        raise SqlError("INVALID_SQL", f"CREATE POLICY: unknown policy type {kind}")
    command = (head.group("command") or "ALL").upper()
    if command not in COMMANDS:
        raise SqlError("INVALID_SQL", f"CREATE POLICY: unknown command {command}")
    targets: list[str] = []
    for raw in (head.group("targets") or "PUBLIC").split(","):
        target = raw.strip().lower()
        if target != "public" and target not in TARGET_ROLES:
            raise SqlError("INVALID_SQL", f"unsupported policy target '{raw.strip()}'")
        targets.append(target)
    clauses = _clauses(sql[head.end() :])
    if command == "INSERT" and "using" in clauses:
        raise SqlError("INVALID_SQL", "INSERT policies cannot define USING")
    if command in ("SELECT", "DELETE") and "check" in clauses:
        raise SqlError("INVALID_SQL", f"{command} policies cannot define WITH CHECK")
    namespace, table = _split(head.group("table"))
    return CreatePolicy(
        sql,
        head.group("name").lower(),
        namespace,
        table,
        command,
        tuple(targets),
        clauses.get("using"),
        clauses.get("check"),
    )


def parse_drop_policy(sql: str) -> DropPolicy:
    """A ``DROP POLICY [IF EXISTS] name ON table`` statement."""
    match = _DROP.match(sql)
    if match is None:
        raise SqlError("INVALID_SQL", "DROP POLICY: expected DROP POLICY [IF EXISTS] name ON table")
    namespace, table = _split(match.group("table"))
    return DropPolicy(sql, match.group("name").lower(), namespace, table, bool(match.group("if_exists")))


def visible_rows(policies: list[Policy], role: str) -> str | None:
    """The condition on rows a subscriber of ``role`` sees (None: every row, for dba and system)."""
    if role in BYPASS_ROLES:
        return None
    using = [p.using_sql for p in policies if p.admits(role)]
    if not using:
        return DENY_ALL
    return " OR ".join(f"({u})" for u in using)
