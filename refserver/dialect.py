"""KalamDB's SQL dialect on top of sqlglot: statement splitting, literal normalization and statement plans.

Standard statements (SELECT, INSERT, UPDATE, DELETE, CREATE NAMESPACE, DROP ...) are parsed by
sqlglot (PostgreSQL dialect, so ``$1`` is a parameter). KalamDB's own commands (``CREATE USER
TABLE``, ``CREATE USER 'u' WITH PASSWORD``, ``EXECUTE AS USER``, ``STORAGE FLUSH``, ``KILL LIVE
QUERY``) are recognised on sqlglot's tokens, and their standard parts are handed back to sqlglot.

Parsing costs far more than executing a one-row INSERT, so plans are cached by SQL text, and
DML/SELECT texts that differ only in literals share one plan through ``normalize``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

import sqlglot
import sqlglot.dialects.postgres  # noqa: F401 - loaded at start, not by the first request (SC-059's baseline)
import sqlglot.dialects.sqlite  # noqa: F401 - the dialect plans are compiled to
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, Tokenizer, TokenType

from refserver.errors import SqlError

READ = "postgres"
LITERAL_BASE = 100_000  # literal k of a normalized text becomes parameter $(LITERAL_BASE + k)
MAX_PARAMS = 50

_LEXEME = re.compile(
    r"""(?P<str>'(?:[^']|'')*')"""
    r"""|(?P<ident>"(?:[^"]|"")*"|`[^`]*`)"""
    r"""|(?P<comment>--[^\n]*|/\*.*?\*/)"""
    r"""|(?P<num>(?<![\w$.])(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?(?![\w.]))"""
    r"""|(?P<param>\$\d+)"""
    r"""|(?P<semi>;)""",
    re.S,
)
_DML_START = re.compile(r"\s*(?:SELECT|INSERT|UPDATE|DELETE)\b", re.I)


def split_statements(sql: str) -> list[str]:
    """Split a request's SQL on top-level ``;`` (not inside strings, identifiers or comments)."""
    parts: list[str] = []
    start = 0
    for m in _LEXEME.finditer(sql):
        if m.lastgroup == "semi":
            parts.append(sql[start : m.start()])
            start = m.end()
    parts.append(sql[start:])
    return [p.strip() for p in parts if _has_code(p)]


def _has_code(text: str) -> bool:
    stripped = re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.S)
    return bool(stripped.strip())


def normalize(sql: str) -> tuple[str, list[Any]] | None:
    """Replace literals of a DML/SELECT text with parameters; None for other statements.

    Returns the template and the literal values (strings unescaped, numbers as int/float).
    """
    if not _DML_START.match(sql):
        return None
    out: list[str] = []
    values: list[Any] = []
    pos = 0
    for m in _LEXEME.finditer(sql):
        kind = m.lastgroup
        if kind not in ("str", "num"):
            continue
        text = m.group()
        if kind == "str":
            values.append(text[1:-1].replace("''", "'"))
        else:
            values.append(float(text) if any(c in text for c in ".eE") else int(text))
        out.append(sql[pos : m.start()])
        out.append(f"${LITERAL_BASE + len(values) - 1} ")
        pos = m.end()
    if not values:
        return sql, []
    out.append(sql[pos:])
    return "".join(out), values


# ---------------------------------------------------------------- plans


@dataclass(slots=True)
class Stmt:
    """Base of all statement plans; ``sql`` is the statement text (for messages)."""

    sql: str


@dataclass(slots=True)
class CreateNamespace(Stmt):
    name: str
    if_not_exists: bool


@dataclass(slots=True)
class DropNamespace(Stmt):
    name: str
    if_exists: bool
    cascade: bool


@dataclass(slots=True)
class ColumnSpec:
    """One column of a CREATE TABLE as written."""

    name: str
    type_name: str
    type_params: tuple[int, ...]
    not_null: bool
    primary_key: bool
    default: exp.Expression | None
    auto_id: bool


@dataclass(slots=True)
class CreateTable(Stmt):
    namespace: str | None
    name: str
    kind: str | None  # USER, SHARED, STREAM as prefixed; None for a bare CREATE TABLE
    if_not_exists: bool
    columns: list[ColumnSpec]
    table_pk: list[str]
    options: dict[str, Any]


@dataclass(slots=True)
class DropTable(Stmt):
    namespace: str | None
    name: str
    if_exists: bool


@dataclass(slots=True)
class CreateUser(Stmt):
    user: str
    password: str
    role: str
    email: str | None
    if_not_exists: bool


@dataclass(slots=True)
class AlterUser(Stmt):
    user: str
    attribute: str  # password, role, email
    value: str


@dataclass(slots=True)
class DropUser(Stmt):
    user: str
    if_exists: bool


@dataclass(slots=True)
class ExecuteAs(Stmt):
    user: str
    inner: Stmt


@dataclass(slots=True)
class StorageFlush(Stmt):
    namespace: str | None
    table: str | None  # None: every table of the namespace


@dataclass(slots=True)
class KillLiveQuery(Stmt):
    live_id: str


@dataclass(slots=True)
class KillJob(Stmt):
    job_id: str


@dataclass(slots=True)
class Query(Stmt):
    """SELECT, INSERT, UPDATE or DELETE: the sqlglot tree; the executor compiles and caches it."""

    tree: exp.Expression
    compiled: dict[Any, Any] = field(default_factory=dict)  # schema version key -> compiled plan


@dataclass(slots=True)
class Bound:
    """A plan with the values of its literals (``$LITERAL_BASE + k``) for one request."""

    stmt: Stmt
    literals: list[Any]


# ---------------------------------------------------------------- parsing


class PlanCache:
    """Parsed plans by exact text and by normalized template (both LRU-bounded)."""

    def __init__(self, size: int = 4096) -> None:
        self._by_text: OrderedDict[str, Bound] = OrderedDict()
        self._by_template: OrderedDict[str, Stmt] = OrderedDict()
        self._size = size

    def __len__(self) -> int:
        return len(self._by_text)

    def plan(self, sql: str) -> Bound:
        """The plan of one statement text (raises ``SqlError`` with ``INVALID_SQL`` if it does not parse)."""
        hit = self._by_text.get(sql)
        if hit is not None:
            self._by_text.move_to_end(sql)
            return hit
        norm = normalize(sql)
        if norm is not None and norm[1]:
            template, literals = norm
            stmt = self._by_template.get(template)
            if stmt is None:
                stmt = parse_statement(template)
                self._remember(self._by_template, template, stmt)
            bound = Bound(stmt, literals)
        else:
            bound = Bound(parse_statement(sql), [])
        self._remember(self._by_text, sql, bound)
        return bound

    def _remember(self, table: OrderedDict, key: str, value: Any) -> None:
        table[key] = value
        if len(table) > self._size:
            table.popitem(last=False)


_WORD_TYPES = {TokenType.VAR, TokenType.STRING, TokenType.IDENTIFIER, TokenType.NUMBER}
_BARE_WORD = re.compile(r"^[A-Za-z0-9_@.]+$")


def _is_word(tok: Token) -> bool:
    """A name: a string, a quoted identifier, or any bare word (keywords such as KEEP included)."""
    return tok.token_type in _WORD_TYPES or bool(_BARE_WORD.match(tok.text))


def _upper(tok: Token) -> str:
    return tok.text.upper() if tok.token_type != TokenType.STRING else ""


class _Tokenizer(Tokenizer):
    """sqlglot's tokenizer without its swallow-the-rest commands (EXECUTE, SHOW, ...)."""

    COMMANDS: ClassVar[set[TokenType]] = set()


def _space_params(sql: str) -> str:
    """``$1,$2`` would read as a dollar-quoted string: put a space after every parameter."""
    return _LEXEME.sub(lambda m: m.group() + " " if m.lastgroup == "param" else m.group(), sql)


def parse_statement(sql: str) -> Stmt:
    """Parse one statement into a plan."""
    sql = _space_params(sql)
    try:
        tokens = _Tokenizer().tokenize(sql)
    except SqlglotError as exc:
        raise SqlError("INVALID_SQL", f"SQL parse error: {_first_line(exc)}") from None
    words = [_upper(t) for t in tokens[:4]]
    head = words[0] if words else ""
    if head == "CREATE" and len(words) > 1:
        if words[1] in ("USER", "SHARED", "STREAM") and len(words) > 2 and words[2] == "TABLE":
            return _create_table(sql, tokens, kind=words[1])
        if words[1] == "TABLE":
            return _create_table(sql, tokens, kind=None)
        if words[1] == "USER":
            return _create_user(sql, tokens)
        if words[1] == "NAMESPACE":
            return _namespace(sql, tokens, create=True)
        if words[1] == "POLICY":
            from refserver.policies import parse_create_policy  # policies builds on this module's plans

            return parse_create_policy(sql)
    if head == "DROP" and len(words) > 1:
        if words[1] == "POLICY":
            from refserver.policies import parse_drop_policy

            return parse_drop_policy(sql)
        if words[1] == "USER" and (len(words) < 3 or words[2] != "TABLE"):
            return _drop_user(sql, tokens)
        if words[1] == "NAMESPACE":
            return _namespace(sql, tokens, create=False)
        if words[1] in ("TABLE", "USER", "SHARED", "STREAM"):
            return _drop_table(sql)
    if head == "ALTER" and len(words) > 1 and words[1] == "USER":
        return _alter_user(sql, tokens)
    if head == "EXECUTE":
        return _execute_as(sql, tokens)
    if head == "STORAGE":
        return _storage_flush(sql, tokens)
    if head == "KILL":
        return _kill(sql, tokens)
    if head in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH"):
        tree = _sqlglot(sql)
        if not isinstance(tree, exp.Select | exp.Insert | exp.Update | exp.Delete):
            raise SqlError("INVALID_SQL", f"Unsupported statement: {_snippet(sql)}")
        return Query(sql, tree)
    raise SqlError("INVALID_SQL", f"Unsupported statement: {_snippet(sql)}")


def _sqlglot(sql: str) -> exp.Expression:
    try:
        tree = sqlglot.parse_one(sql, read=READ)
    except SqlglotError as exc:
        raise SqlError("INVALID_SQL", f"SQL parse error: {_first_line(exc)}") from None
    if not isinstance(tree, exp.Expression) or isinstance(tree, exp.Command):
        raise SqlError("INVALID_SQL", f"Unsupported statement: {_snippet(sql)}")
    return tree


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _snippet(sql: str) -> str:
    return sql if len(sql) <= 80 else sql[:77] + "..."


class _Cursor:
    """A tiny reader over sqlglot tokens for KalamDB's non-standard commands."""

    def __init__(self, sql: str, tokens: list[Token]) -> None:
        self.sql = sql
        self.tokens = tokens
        self.i = 0

    def peek(self) -> str:
        return _upper(self.tokens[self.i]) if self.i < len(self.tokens) else ""

    def done(self) -> bool:
        return self.i >= len(self.tokens)

    def accept(self, *words: str) -> bool:
        save = self.i
        for w in words:
            if self.peek() != w:
                self.i = save
                return False
            self.i += 1
        return True

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise SqlError("INVALID_SQL", f"Expected {' '.join(words)} in: {_snippet(self.sql)}")

    def name(self, what: str) -> str:
        """A string literal, quoted identifier or bare word (user names may be quoted either way)."""
        if self.done() or not _is_word(self.tokens[self.i]):
            raise SqlError("INVALID_SQL", f"Expected {what} in: {_snippet(self.sql)}")
        tok = self.tokens[self.i]
        self.i += 1
        return tok.text

    def qualified(self) -> tuple[str | None, str]:
        first = self.name("a name")
        if self.i < len(self.tokens) and self.tokens[self.i].token_type == TokenType.DOT:
            self.i += 1
            return first, self.name("a name")
        return None, first

    def end(self) -> None:
        if not self.done():
            raise SqlError("INVALID_SQL", f"Unexpected '{self.tokens[self.i].text}' in: {_snippet(self.sql)}")


def _namespace(sql: str, tokens: list[Token], create: bool) -> Stmt:
    cur = _Cursor(sql, tokens)
    cur.expect("CREATE" if create else "DROP", "NAMESPACE")
    if create:
        flag = cur.accept("IF", "NOT", "EXISTS")
        name = cur.name("a namespace name")
        cur.end()
        return CreateNamespace(sql, name, flag)
    flag = cur.accept("IF", "EXISTS")
    name = cur.name("a namespace name")
    cascade = cur.accept("CASCADE")
    cur.end()
    return DropNamespace(sql, name, flag, cascade)


def _create_user(sql: str, tokens: list[Token]) -> Stmt:
    cur = _Cursor(sql, tokens)
    cur.expect("CREATE", "USER")
    flag = cur.accept("IF", "NOT", "EXISTS")
    user = cur.name("a user name")
    cur.expect("WITH", "PASSWORD")
    password = cur.name("a password")
    role = "user"
    email = None
    while not cur.done():
        if cur.accept("ROLE"):
            role = cur.name("a role").lower()
        elif cur.accept("EMAIL"):
            email = cur.name("an email")
        else:
            cur.end()
    return CreateUser(sql, user, password, role, email, flag)


def _alter_user(sql: str, tokens: list[Token]) -> Stmt:
    cur = _Cursor(sql, tokens)
    cur.expect("ALTER", "USER")
    user = cur.name("a user name")
    cur.expect("SET")
    for attribute in ("PASSWORD", "ROLE", "EMAIL"):
        if cur.accept(attribute):
            value = cur.name(attribute.lower())
            cur.end()
            return AlterUser(sql, user, attribute.lower(), value)
    raise SqlError("INVALID_SQL", f"Expected SET PASSWORD, SET ROLE or SET EMAIL in: {_snippet(sql)}")


def _drop_user(sql: str, tokens: list[Token]) -> Stmt:
    cur = _Cursor(sql, tokens)
    cur.expect("DROP", "USER")
    flag = cur.accept("IF", "EXISTS")
    user = cur.name("a user name")
    cur.end()
    return DropUser(sql, user, flag)


def _drop_table(sql: str) -> Stmt:
    text = re.sub(r"^\s*DROP\s+(?:USER|SHARED|STREAM)\s+TABLE", "DROP TABLE", sql, flags=re.I)
    tree = _sqlglot(text)
    if not isinstance(tree, exp.Drop) or (tree.args.get("kind") or "").upper() != "TABLE":
        raise SqlError("INVALID_SQL", f"Unsupported statement: {_snippet(sql)}")
    table = (tree.args.get("tables") or [tree.this])[0]
    return DropTable(sql, table.db or None, table.name, bool(tree.args.get("exists")))


def _execute_as(sql: str, tokens: list[Token]) -> Stmt:
    cur = _Cursor(sql, tokens)
    cur.expect("EXECUTE", "AS", "USER")
    user = cur.name("a user name")
    if cur.done() or cur.tokens[cur.i].token_type != TokenType.L_PAREN:
        raise SqlError("INVALID_SQL", "EXECUTE AS USER needs one statement in parentheses")
    opening = cur.tokens[cur.i]
    closing = tokens[-1]
    if closing.token_type != TokenType.R_PAREN:
        raise SqlError("INVALID_SQL", "EXECUTE AS USER needs one statement in parentheses")
    inner_sql = sql[opening.end + 1 : closing.start].strip()
    if not inner_sql or len(split_statements(inner_sql)) != 1:
        raise SqlError("INVALID_SQL", "EXECUTE AS USER wraps exactly one statement")
    inner = parse_statement(inner_sql)
    if isinstance(inner, ExecuteAs):
        raise SqlError("INVALID_SQL", "EXECUTE AS USER cannot be nested")
    return ExecuteAs(sql, user, inner)


def _storage_flush(sql: str, tokens: list[Token]) -> Stmt:
    cur = _Cursor(sql, tokens)
    cur.expect("STORAGE", "FLUSH")
    if cur.accept("TABLE"):
        ns, name = cur.qualified()
        cur.end()
        if ns is None:
            raise SqlError("INVALID_SQL", "STORAGE FLUSH TABLE needs a namespace-qualified table name")
        return StorageFlush(sql, ns, name)
    cur.expect("ALL")
    ns = None
    if cur.accept("IN"):
        cur.accept("NAMESPACE")
        ns = cur.name("a namespace name")
    cur.end()
    return StorageFlush(sql, ns, None)


def _kill(sql: str, tokens: list[Token]) -> Stmt:
    cur = _Cursor(sql, tokens)
    cur.expect("KILL")
    if cur.accept("LIVE", "QUERY"):
        live_id = cur.name("a live query id")
        cur.end()
        return KillLiveQuery(sql, live_id)
    if cur.accept("JOB"):
        job_id = cur.name("a job id")
        cur.end()
        return KillJob(sql, job_id)
    raise SqlError("INVALID_SQL", f"Unsupported statement: {_snippet(sql)}")


_TYPE_ALIASES = {"FILE": "KALAM_FILE"}


def _create_table(sql: str, tokens: list[Token], kind: str | None) -> Stmt:
    """Strip the table kind and the WITH (...) options, let sqlglot parse the rest."""
    pieces: list[str] = []
    pos = 0
    depth = 0
    options: dict[str, Any] = {}
    with_at: int | None = None
    for idx, tok in enumerate(tokens):
        if idx == 1 and kind is not None:
            pieces.append(sql[pos : tok.start])
            pos = tok.end + 1
            continue
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and tok.token_type == TokenType.WITH and idx > 2:
            with_at = idx
            break
        elif depth == 1 and tok.text.upper() in _TYPE_ALIASES and tok.token_type != TokenType.STRING:
            pieces.append(sql[pos : tok.start])
            pieces.append(_TYPE_ALIASES[tok.text.upper()])
            pos = tok.end + 1
    if with_at is not None:
        pieces.append(sql[pos : tokens[with_at].start])
        options = _with_options(sql, tokens[with_at + 1 :])
    else:
        pieces.append(sql[pos:])
    tree = _sqlglot("".join(pieces))
    if not isinstance(tree, exp.Create) or not isinstance(tree.this, exp.Schema):
        raise SqlError("INVALID_SQL", f"Expected CREATE TABLE ns.name (columns...): {_snippet(sql)}")
    table = tree.this.this
    columns: list[ColumnSpec] = []
    table_pk: list[str] = []
    for item in tree.this.expressions:
        if isinstance(item, exp.ColumnDef):
            columns.append(_column(item))
        elif isinstance(item, exp.PrimaryKey):
            table_pk.extend(e.name for e in item.expressions)
        else:
            raise SqlError("INVALID_SQL", f"Unsupported table element: {item.sql()}")
    return CreateTable(
        sql, table.db or None, table.name, kind, bool(tree.args.get("exists")), columns, table_pk, options
    )


def _with_options(sql: str, tokens: list[Token]) -> dict[str, Any]:
    if not tokens or tokens[0].token_type != TokenType.L_PAREN or tokens[-1].token_type != TokenType.R_PAREN:
        raise SqlError("INVALID_SQL", "Expected WITH (KEY = value, ...)")
    body = tokens[1:-1]
    options: dict[str, Any] = {}
    i = 0
    while i < len(body):
        if i + 2 >= len(body) or body[i + 1].token_type != TokenType.EQ:
            raise SqlError("INVALID_SQL", "Expected WITH (KEY = value, ...)")
        key = body[i].text.upper()
        value_tok = body[i + 2]
        if value_tok.token_type == TokenType.NUMBER:
            value: Any = int(value_tok.text) if value_tok.text.isdigit() else float(value_tok.text)
        elif value_tok.token_type in (TokenType.TRUE, TokenType.FALSE):
            value = value_tok.token_type == TokenType.TRUE
        else:
            value = value_tok.text
        options[key] = value
        i += 3
        if i < len(body):
            if body[i].token_type != TokenType.COMMA:
                raise SqlError("INVALID_SQL", "Expected ',' between table options")
            i += 1
    return options


def _column(cd: exp.ColumnDef) -> ColumnSpec:
    kind = cd.args.get("kind")
    if kind is None:
        raise SqlError("INVALID_SQL", f"Column '{cd.name}' has no type")
    type_name = kind.this.name
    if type_name == "USERDEFINED":
        type_name = kind.sql().split("(")[0]
    if type_name == "KALAM_FILE":
        type_name = "FILE"
    params = tuple(int(p.this.this) for p in kind.expressions if isinstance(p.this, exp.Literal))
    not_null = primary_key = auto_id = False
    default = None
    for constraint in cd.constraints:
        ck = constraint.kind
        if isinstance(ck, exp.NotNullColumnConstraint):
            not_null = not ck.args.get("allow_null")
        elif isinstance(ck, exp.PrimaryKeyColumnConstraint):
            primary_key = True
        elif isinstance(ck, exp.DefaultColumnConstraint):
            default = ck.this
        elif isinstance(ck, exp.AutoIncrementColumnConstraint | exp.GeneratedAsIdentityColumnConstraint):
            auto_id = True
        elif isinstance(ck, exp.UniqueColumnConstraint):
            continue
        else:
            raise SqlError("INVALID_SQL", f"Unsupported column constraint: {constraint.sql()}")
    return ColumnSpec(cd.name, type_name, params, not_null, primary_key, default, auto_id)
