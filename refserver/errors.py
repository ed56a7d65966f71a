"""The one error type of SQL execution, carrying KalamDB's error code (and so its HTTP status)."""

from __future__ import annotations

_STATUS = {
    "PERMISSION_DENIED": 403,
    "RATE_LIMIT_EXCEEDED": 429,
    "NOT_LEADER": 503,
    "INTERNAL_ERROR": 500,
}


class SqlError(Exception):
    """A statement failed; ``code`` is a KalamDB error code such as ``SQL_EXECUTION_ERROR``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """HTTP status KalamDB answers with for this code (400 unless listed)."""
        return _STATUS.get(self.code, 400)


def not_found(name: str) -> SqlError:
    """KalamDB reports a missing table as an execution error (HTTP 400)."""
    return SqlError("SQL_EXECUTION_ERROR", f"Table '{name}' not found")


def denied(message: str) -> SqlError:
    """A role is not allowed to do this (HTTP 403)."""
    return SqlError("PERMISSION_DENIED", message)
