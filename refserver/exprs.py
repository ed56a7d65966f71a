"""Compile sqlglot expressions into Python closures over a row dict.

Used where SQLite cannot be asked cheaply: values of INSERT/UPDATE, and live-query filters,
which run for every change of every subscribed table. SQL NULL logic is three-valued.
"""

from __future__ import annotations

import operator
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from refserver.dialect import LITERAL_BASE, MAX_PARAMS
from refserver.errors import SqlError
from refserver.snowflake import IdSource
from refserver.values import KType, coercer


@dataclass(slots=True)
class EvalContext:
    """What an expression may read besides the row: bound values, the caller, id generators."""

    params: list[Any]
    literals: list[Any]
    user: str
    ids: IdSource
    now_us: int = field(default_factory=lambda: time.time_ns() // 1000)

    def bound(self, n: int) -> Any:
        """Value of ``$n``: a request parameter, or a literal lifted out by normalization."""
        if n >= LITERAL_BASE:
            return self.literals[n - LITERAL_BASE]
        if not 1 <= n <= len(self.params):
            raise SqlError("INVALID_PARAMETER", f"No value bound for parameter ${n}")
        return self.params[n - 1]


Fn = Callable[[Mapping[str, Any], EvalContext], Any]


def parameter_number(node: exp.Expression) -> int | None:
    """The ``n`` of a ``$n`` node, else None."""
    if isinstance(node, exp.Parameter) and isinstance(node.this, exp.Literal):
        n = int(node.this.this)
        if n < LITERAL_BASE and n > MAX_PARAMS:
            raise SqlError("INVALID_PARAMETER", f"At most {MAX_PARAMS} parameters are allowed")
        return n
    return None


_CMP: dict[type, Callable[[Any, Any], bool]] = {
    exp.EQ: operator.eq,
    exp.NEQ: operator.ne,
    exp.GT: operator.gt,
    exp.GTE: operator.ge,
    exp.LT: operator.lt,
    exp.LTE: operator.le,
}
_ARITH: dict[type, Callable[[Any, Any], Any]] = {
    exp.Add: operator.add,
    exp.Sub: operator.sub,
    exp.Mul: operator.mul,
    exp.Mod: operator.mod,
}


class Compiler:
    """Compiles expressions against one table's columns (name -> KType)."""

    def __init__(self, columns: Mapping[str, KType]) -> None:
        self.columns = {k.lower(): v for k, v in columns.items()}

    def column_type(self, node: exp.Expression) -> KType | None:
        """The type of a column reference, or None if ``node`` is not one."""
        if isinstance(node, exp.Column):
            return self.columns.get(node.name.lower())
        return None

    def compile(self, node: exp.Expression, as_type: KType | None = None) -> Fn:
        """A closure computing ``node``; ``as_type`` coerces constants to a target column's type."""
        fn = self._compile(node)
        if as_type is not None and self.column_type(node) is None:
            coerce = coercer(as_type)
            return lambda row, ctx: coerce(fn(row, ctx))
        return fn

    def _compile(self, node: exp.Expression) -> Fn:
        n = parameter_number(node)
        if n is not None:
            return lambda row, ctx: ctx.bound(n)
        if isinstance(node, exp.Paren):
            return self._compile(node.this)
        if isinstance(node, exp.Literal):
            value: Any = node.this
            if not node.is_string:
                value = float(value) if any(c in value for c in ".eE") else int(value)
            return lambda row, ctx: value
        if isinstance(node, exp.Null):
            return lambda row, ctx: None
        if isinstance(node, exp.Boolean):
            flag = bool(node.this)
            return lambda row, ctx: flag
        if isinstance(node, exp.Column):
            return self._column(node)
        if isinstance(node, exp.Neg):
            inner = self._compile(node.this)
            return lambda row, ctx: _null_or(inner(row, ctx), operator.neg)
        if type(node) in _CMP:
            return self._comparison(node)
        if type(node) in _ARITH:
            return self._binary(node, _ARITH[type(node)])
        if isinstance(node, exp.Div):
            return self._binary(node, _divide)
        if isinstance(node, exp.DPipe):
            return self._binary(node, _concat)
        if isinstance(node, exp.And):
            return self._and(node)
        if isinstance(node, exp.Or):
            return self._or(node)
        if isinstance(node, exp.Not):
            inner = self._compile(node.this)
            return lambda row, ctx: _null_or(inner(row, ctx), operator.not_)
        if isinstance(node, exp.Is):
            return self._is(node)
        if isinstance(node, exp.In):
            return self._in(node)
        if isinstance(node, exp.Between):
            return self._between(node)
        if isinstance(node, exp.Like | exp.ILike):
            return self._like(node, isinstance(node, exp.ILike))
        if isinstance(node, exp.Cast):
            return self._compile(node.this)
        return self._function(node)

    def _column(self, node: exp.Column) -> Fn:
        name = node.name.lower()
        if name not in self.columns:
            raise SqlError("SQL_EXECUTION_ERROR", f"Column '{node.name}' not found")
        return lambda row, ctx: row.get(name)

    def _operands(self, left: exp.Expression, right: exp.Expression) -> tuple[Fn, Fn]:
        lt, rt = self.column_type(left), self.column_type(right)
        return self.compile(left, rt), self.compile(right, lt)

    def _comparison(self, node: exp.Expression) -> Fn:
        op = _CMP[type(node)]
        lf, rf = self._operands(node.this, node.expression)

        def compare(row: Mapping[str, Any], ctx: EvalContext) -> Any:
            a, b = lf(row, ctx), rf(row, ctx)
            if a is None or b is None:
                return None
            try:
                return op(a, b)
            except TypeError:
                return op(str(a), str(b))

        return compare

    def _binary(self, node: exp.Expression, op: Callable[[Any, Any], Any]) -> Fn:
        lf, rf = self._compile(node.this), self._compile(node.expression)

        def apply(row: Mapping[str, Any], ctx: EvalContext) -> Any:
            a, b = lf(row, ctx), rf(row, ctx)
            if a is None or b is None:
                return None
            try:
                return op(a, b) if op is _concat else op(_num(a), _num(b))
            except (TypeError, ValueError, ZeroDivisionError) as exc:
                raise SqlError("SQL_EXECUTION_ERROR", f"Cannot evaluate {node.sql()}: {exc}") from None

        return apply

    def _and(self, node: exp.And) -> Fn:
        lf, rf = self._compile(node.this), self._compile(node.expression)

        def both(row: Mapping[str, Any], ctx: EvalContext) -> Any:
            a = lf(row, ctx)
            if a is False:
                return False
            b = rf(row, ctx)
            if b is False:
                return False
            return None if a is None or b is None else True

        return both

    def _or(self, node: exp.Or) -> Fn:
        lf, rf = self._compile(node.this), self._compile(node.expression)

        def either(row: Mapping[str, Any], ctx: EvalContext) -> Any:
            a = lf(row, ctx)
            if a is True:
                return True
            b = rf(row, ctx)
            if b is True:
                return True
            return None if a is None or b is None else False

        return either

    def _is(self, node: exp.Is) -> Fn:
        inner = self._compile(node.this)
        target = node.expression
        if isinstance(target, exp.Null):
            return lambda row, ctx: inner(row, ctx) is None
        if isinstance(target, exp.Boolean):
            flag = bool(target.this)
            return lambda row, ctx: inner(row, ctx) is not None and bool(inner(row, ctx)) == flag
        raise SqlError("INVALID_SQL", f"Unsupported IS expression: {node.sql()}")

    def _in(self, node: exp.In) -> Fn:
        if node.args.get("query") is not None:
            raise SqlError("INVALID_SQL", "Subqueries are not supported")
        inner = self._compile(node.this)
        kt = self.column_type(node.this)
        options = [self.compile(e, kt) for e in node.expressions]

        def member(row: Mapping[str, Any], ctx: EvalContext) -> Any:
            value = inner(row, ctx)
            if value is None:
                return None
            return any(value == f(row, ctx) for f in options)

        return member

    def _between(self, node: exp.Between) -> Fn:
        inner = self._compile(node.this)
        kt = self.column_type(node.this)
        low, high = self.compile(node.args["low"], kt), self.compile(node.args["high"], kt)

        def between(row: Mapping[str, Any], ctx: EvalContext) -> Any:
            v, lo, hi = inner(row, ctx), low(row, ctx), high(row, ctx)
            if v is None or lo is None or hi is None:
                return None
            return lo <= v <= hi

        return between

    def _like(self, node: exp.Expression, fold: bool) -> Fn:
        inner, pattern = self._compile(node.this), self._compile(node.expression)
        cache: dict[str, re.Pattern[str]] = {}

        def like(row: Mapping[str, Any], ctx: EvalContext) -> Any:
            value, pat = inner(row, ctx), pattern(row, ctx)
            if value is None or pat is None:
                return None
            rx = cache.get(pat)
            if rx is None:
                body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pat)
                rx = cache[pat] = re.compile(body, re.S | (re.I if fold else 0))
            return rx.fullmatch(str(value)) is not None

        return like

    def _function(self, node: exp.Expression) -> Fn:
        name = node.name.upper() if isinstance(node, exp.Anonymous) else type(node).__name__.upper()
        if name in ("NOW", "CURRENTTIMESTAMP", "CURRENT_TIMESTAMP"):
            return lambda row, ctx: ctx.now_us
        if name in ("SNOWFLAKE_ID",):
            return lambda row, ctx: ctx.ids.next()
        if name in ("CURRENTUSER", "CURRENT_USER"):
            return lambda row, ctx: ctx.user
        if name in ("UUID_V7", "UUID", "GENUUID", "ULID"):
            return lambda row, ctx: str(uuid.uuid4())
        if name in ("LOWER", "UPPER"):
            inner = self._compile(node.this)
            conv = str.lower if name == "LOWER" else str.upper
            return lambda row, ctx: _null_or(inner(row, ctx), lambda v: conv(str(v)))
        raise SqlError("INVALID_SQL", f"Unsupported expression: {node.sql()}")


def _concat(a: Any, b: Any) -> str:
    return f"{a}{b}"


def _null_or(value: Any, fn: Callable[[Any], Any]) -> Any:
    return None if value is None else fn(value)


def _num(value: Any) -> Any:
    if isinstance(value, str):
        return float(value) if any(c in value for c in ".eE") else int(value)
    return value


def _divide(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        return int(a / b)
    return a / b


def truthy(value: Any) -> bool:
    """A WHERE result: only TRUE passes (NULL and FALSE do not)."""
    return value is True or (value is not None and value is not False and bool(value))
