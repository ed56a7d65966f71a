"""KalamDB column types: how values are coerced on the way in and encoded as JSON on the way out.

Stored values are plain Python/SQLite values (BIGINT → int, TIMESTAMP → int microseconds,
BOOLEAN → bool). On the wire, 64-bit integers are JSON strings and timestamps JSON numbers
in microseconds, exactly as KalamDB's Arrow→JSON conversion does.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from refserver.errors import SqlError


@dataclass(frozen=True, slots=True)
class KType:
    """One KalamDB data type: its wire name, its SQLite storage type and converters."""

    name: str  # Boolean, Int, BigInt, ... (or Decimal / Embedding with ``params``)
    sqlite: str
    params: tuple[int, ...] = ()

    @property
    def wire(self) -> Any:
        """The ``data_type`` value of a schema entry."""
        if self.name == "Decimal":
            return {"Decimal": {"precision": self.params[0], "scale": self.params[1]}}
        if self.name == "Embedding":
            return {"Embedding": self.params[0]}
        return self.name


_SIMPLE: dict[str, tuple[str, str]] = {
    "BIGINT": ("BigInt", "INTEGER"),
    "INT8": ("BigInt", "INTEGER"),
    "INT": ("Int", "INTEGER"),
    "INTEGER": ("Int", "INTEGER"),
    "SMALLINT": ("SmallInt", "INTEGER"),
    "TEXT": ("Text", "TEXT"),
    "VARCHAR": ("Text", "TEXT"),
    "STRING": ("Text", "TEXT"),
    "CHAR": ("Text", "TEXT"),
    "BOOLEAN": ("Boolean", "INTEGER"),
    "BOOL": ("Boolean", "INTEGER"),
    "DOUBLE": ("Double", "REAL"),
    "FLOAT": ("Float", "REAL"),
    "REAL": ("Float", "REAL"),
    "TIMESTAMP": ("Timestamp", "INTEGER"),
    "DATETIME": ("DateTime", "INTEGER"),
    "DATE": ("Date", "TEXT"),
    "TIME": ("Time", "TEXT"),
    "JSON": ("Json", "TEXT"),
    "JSONB": ("Json", "TEXT"),
    "UUID": ("Uuid", "TEXT"),
    "BYTES": ("Bytes", "BLOB"),
    "BYTEA": ("Bytes", "BLOB"),
    "VARBINARY": ("Bytes", "BLOB"),
    "FILE": ("File", "TEXT"),
    "SERIAL": ("BigInt", "INTEGER"),
    "BIGSERIAL": ("BigInt", "INTEGER"),
}

BIGINT = KType("BigInt", "INTEGER")
TEXT = KType("Text", "TEXT")
BOOLEAN = KType("Boolean", "INTEGER")
DOUBLE = KType("Double", "REAL")
TIMESTAMP = KType("Timestamp", "INTEGER")
JSON = KType("Json", "TEXT")
INT = KType("Int", "INTEGER")


def ktype(base: str, params: tuple[int, ...] = ()) -> KType:
    """The KalamDB type for a SQL type name such as ``BIGINT`` or ``DECIMAL`` (with its parameters)."""
    name = base.upper()
    if name in ("DECIMAL", "NUMERIC"):
        precision, scale = (params + (38, 10))[:2] if params else (38, 10)
        return KType("Decimal", "TEXT", (precision, scale))
    if name == "EMBEDDING":
        if len(params) != 1 or params[0] <= 0:
            raise SqlError("INVALID_SQL", "EMBEDDING needs one positive dimension, e.g. EMBEDDING(384)")
        return KType("Embedding", "TEXT", params)
    if name not in _SIMPLE:
        raise SqlError("INVALID_SQL", f"Unsupported data type: {base}")
    wire, storage = _SIMPLE[name]
    return KType(wire, storage)


def is_auto_id_type(base: str) -> bool:
    """``SERIAL``/``BIGSERIAL`` columns take a Snowflake id by default, as KalamDB maps them."""
    return base.upper() in ("SERIAL", "BIGSERIAL")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError(f"not an integer: {value!r}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "t", "f", "1", "0"):
        return value.strip().lower() in ("true", "t", "1")
    raise ValueError(f"not a boolean: {value!r}")


def _to_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return float(value)
    raise ValueError(f"not a number: {value!r}")


def _to_micros(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        delta = parsed - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise ValueError(f"not a timestamp: {value!r}")


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise ValueError(f"not text: {value!r}")


def _to_json_text(value: Any) -> str:
    import orjson

    if isinstance(value, str):
        orjson.loads(value)
        return value
    return orjson.dumps(value).decode()


def _to_decimal_text(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError(f"not a decimal: {value!r}")
    return str(decimal.Decimal(str(value)))


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        return bytes(value)
    if isinstance(value, str):
        return base64.b64decode(value) if value else b""
    raise ValueError(f"not bytes: {value!r}")


_COERCE: dict[str, Callable[[Any], Any]] = {
    "BigInt": _to_int,
    "Int": _to_int,
    "SmallInt": _to_int,
    "Boolean": _to_bool,
    "Double": _to_float,
    "Float": _to_float,
    "Timestamp": _to_micros,
    "DateTime": _to_micros,
    "Json": _to_json_text,
    "Embedding": _to_json_text,
    "Decimal": _to_decimal_text,
    "Bytes": _to_bytes,
}


def coercer(kt: KType) -> Callable[[Any], Any]:
    """A function turning a client value (JSON scalar or SQL literal) into the stored value; None stays None."""
    base = _COERCE.get(kt.name, _to_text)

    def coerce(value: Any) -> Any:
        if value is None:
            return None
        try:
            return base(value)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise SqlError("SQL_EXECUTION_ERROR", f"Cannot convert {value!r} to {kt.name}: {exc}") from None

    return coerce


def _enc_bigint(value: Any) -> Any:
    return None if value is None else str(value)


def _enc_bool(value: Any) -> Any:
    return None if value is None else bool(value)


def _enc_bytes(value: Any) -> Any:
    return None if value is None else list(value)


def _enc_same(value: Any) -> Any:
    return value


_ENCODE: dict[str, Callable[[Any], Any]] = {
    "BigInt": _enc_bigint,
    "Boolean": _enc_bool,
    "Bytes": _enc_bytes,
}


def encoder(kt: KType) -> Callable[[Any], Any]:
    """A function turning a stored value into its JSON value (BIGINT → string, BOOLEAN → bool)."""
    return _ENCODE.get(kt.name, _enc_same)


def infer_type(value: Any) -> KType:
    """The KalamDB type of a computed value whose type the schema does not give."""
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return BIGINT
    if isinstance(value, float):
        return DOUBLE
    return TEXT
