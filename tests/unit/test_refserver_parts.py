"""Small parts of the reference server: Snowflake ids, values, expressions, table validation, faults, JWTs."""

from __future__ import annotations

import re
import time

import pytest
import sqlglot

from refserver import catalog, dialect
from refserver.auth import TokenError, Tokens, check_password, hash_password, verify_password
from refserver.errors import SqlError
from refserver.exprs import Compiler, EvalContext, truthy
from refserver.faults import FAULT_HELP, Fault, FaultSpecError, FaultStage, PassThrough, parse_faults
from refserver.snowflake import EPOCH_MS, Snowflake
from refserver.values import BIGINT, TEXT, coercer, encoder, ktype


def millis_of(seq: int) -> int:
    """Unix milliseconds at which a Snowflake id was made (41 bits of ms above 10 node and 12 sequence bits)."""
    return (seq >> 22) + EPOCH_MS


def test_snowflake_layout_and_monotonic():
    ids = Snowflake(node_id=5)
    values = [ids.next() for _ in range(10_000)]
    assert values == sorted(set(values))
    assert (values[0] >> 12) & 0x3FF == 5
    assert abs(millis_of(values[-1]) - time.time() * 1000) < 5_000
    ids.observe(values[-1] + (1000 << 22))
    assert ids.next() > values[-1] + (1000 << 22)


def test_values_coerce_and_encode():
    assert coercer(BIGINT)("42") == 42 and encoder(BIGINT)(42) == "42"
    assert coercer(ktype("TIMESTAMP"))("1970-01-01T00:00:01Z") == 1_000_000
    assert coercer(ktype("BOOLEAN"))("true") is True
    assert ktype("DECIMAL", (10, 2)).wire == {"Decimal": {"precision": 10, "scale": 2}}
    assert ktype("EMBEDDING", (3,)).wire == {"Embedding": 3}
    with pytest.raises(SqlError, match="Cannot convert 'abc' to BigInt"):
        coercer(BIGINT)("abc")
    with pytest.raises(SqlError, match="Unsupported data type: GEOMETRY"):
        ktype("GEOMETRY")


def _where(sql: str):
    return Compiler({"a": BIGINT, "b": TEXT}).compile(sqlglot.parse_one(sql, read="postgres").args["where"].this)


def test_filters_are_three_valued_and_coerce_literals():
    ctx = EvalContext([], [], "alice", Snowflake(1))
    check = _where("SELECT * FROM t WHERE a = '5' AND (b LIKE 'x%' OR b IS NULL)")
    assert truthy(check({"a": 5, "b": "xyz"}, ctx))
    assert truthy(check({"a": 5, "b": None}, ctx))
    assert not truthy(check({"a": 6, "b": "xyz"}, ctx))
    assert not truthy(_where("SELECT * FROM t WHERE NOT a = 1")({"a": None}, ctx))
    assert truthy(_where("SELECT * FROM t WHERE a IN (1, 2) AND b = CURRENT_USER()")({"a": 2, "b": "alice"}, ctx))
    assert truthy(_where("SELECT * FROM t WHERE a BETWEEN 1 AND 3")({"a": 3}, ctx))


def test_table_validation_rules():
    def build(sql: str):
        return catalog.build_table(dialect.parse_statement(sql), "ns", 0)

    table = build("CREATE TABLE ns.t (id TEXT PRIMARY KEY, v TEXT)")
    assert table.kind == "SHARED" and table.access_level == "PRIVATE"
    assert [c.name for c in table.columns][-2:] == ["_seq", "_deleted"]
    for bad, reason in (
        ("CREATE USER TABLE ns.t (id TEXT, v TEXT)", "USER tables need a single-column PRIMARY KEY"),
        ("CREATE USER TABLE ns.t (a TEXT, b TEXT, PRIMARY KEY (a, b))", "USER tables need a single-column PRIMARY KEY"),
        ("CREATE STREAM TABLE ns.t (id TEXT PRIMARY KEY)", "STREAM tables require TTL_SECONDS"),
        ("CREATE USER TABLE ns.t (id TEXT PRIMARY KEY) WITH (ACCESS_LEVEL = 'PUBLIC')",
         "Option ACCESS_LEVEL is only valid for SHARED tables"),
        ("CREATE SHARED TABLE ns.t (id TEXT PRIMARY KEY) WITH (TYPE = 'USER')",
         "Table type SHARED conflicts with TYPE='USER'"),
        ("CREATE USER TABLE ns.t (id TEXT PRIMARY KEY) WITH (COLOR = 'red')", "Unknown table option 'COLOR'"),
        ("CREATE USER TABLE ns.t (id TEXT PRIMARY KEY, _seq BIGINT)", "Column name '_seq' is reserved"),
    ):  # fmt: skip
        with pytest.raises(SqlError, match=re.escape(reason)):
            build(bad)
    stream = build("CREATE STREAM TABLE ns.t (id TEXT PRIMARY KEY) WITH (TTL_SECONDS = 30)")
    assert stream.per_user and "_deleted" not in stream.by_name


def test_fault_specs():
    faults = parse_faults(["drop:every=3", "delay:ms=5", "stale-old", "stall:after=1,for=2"])
    assert faults.hits(Fault.DROP, 6) and not faults.hits(Fault.DROP, 7)
    assert faults.param(Fault.DELAY, "every") == 1 and faults.hits(Fault.STALE_OLD, 1)
    assert faults.stage().live_changes_skew == 0 and parse_faults(["skew-changes:by=4"]).stage().live_changes_skew == 4
    for bad, reason in (
        (["nope"], "unknown fault 'nope'"),
        (["drop"], "fault 'drop' needs every="),
        (["drop:every=0"], "parameter every of fault 'drop:every=0' is out of range"),
        (["drop:every=2", "drop:every=3"], "fault 'drop' given twice"),
        (["leak:bytes=x"], "parameter bytes of fault 'leak:bytes=x' must be an integer"),
    ):
        with pytest.raises(FaultSpecError, match=re.escape(reason)):
            parse_faults(bad)


def test_new_fault_specs_parse_their_values():
    faults = parse_faults(
        ["mutate:column=Content,action=set,value=18446744073709551616,op=delete", "reorder:every=1,op=delete"]
    )
    assert faults.option(Fault.MUTATE, "value") == 2**64 and faults.option(Fault.MUTATE, "column") == "content"
    assert parse_faults(["mutate:column=v,action=set,value=1.9"]).option(Fault.MUTATE, "value") == 1.9
    assert parse_faults(["mutate:column=v,action=set,value=1.9.1"]).option(Fault.MUTATE, "value") == "1.9.1"
    assert parse_faults(["malformed-row"]).param(Fault.MALFORMED_ROW, "every") == 1
    assert faults.hits(Fault.REORDER, 7, "delete", 1) and not faults.hits(Fault.REORDER, 7, "insert", 1)
    bad = (
        "mutate:column=v,action=set",  # set needs a value
        "mutate:column=v,action=null,value=3",  # and only set takes one
        "mutate:column=v,action=swap",
        "mutate:column=a-b,action=drop",
        "mutate:action=drop",
        "reorder:every=1,op=upsert",
        "malformed-row:every=0",
    )
    for spec in bad:
        with pytest.raises(FaultSpecError) as err:
            parse_faults([spec])
        assert "\n" not in str(err.value)


def test_fault_stage_and_help():
    """No fault configured: the pass-through stage; the help names every fault with its parameters."""
    assert type(parse_faults([]).stage()) is PassThrough
    assert type(parse_faults(["drop:every=2"]).stage()) is FaultStage
    for name in Fault:
        assert f"{name}" in FAULT_HELP
    assert "delay:ms=N[,every=N]" in FAULT_HELP and "stale-old[:every=N]" in FAULT_HELP


def test_passwords_and_tokens():
    stored = hash_password("Str0ngPass!")
    assert verify_password("Str0ngPass!", stored) and not verify_password("other-pass", stored)
    assert not verify_password("x", "")
    for weak, reason in (("short", "at least 8 characters"), ("password123", "too common")):
        with pytest.raises(SqlError, match=reason):
            check_password(weak)
    tokens = Tokens("s" * 40)
    access, _ = tokens.issue("alice", "user", "access")
    refresh, _ = tokens.issue("alice", "user", "refresh")
    assert tokens.verify(access).user_id == "alice"
    with pytest.raises(TokenError, match="Expected an access token"):
        tokens.verify(refresh)
    with pytest.raises(TokenError, match="Signature verification failed"):
        Tokens("t" * 40).verify(access)
    expired = Tokens("s" * 40, access_hours=-1).issue("alice", "user", "access")[0]
    with pytest.raises(TokenError, match="Token has expired") as err:
        tokens.verify(expired)
    assert err.value.code == "TOKEN_EXPIRED"


def test_logged_statements_never_show_a_password():
    from refserver.auth import redact_passwords

    sql = "CREATE USER 'a' WITH PASSWORD 'It''s-Secret-1' ROLE user; ALTER USER 'b' SET password 'Other-Pw-22"
    redacted = redact_passwords(sql)
    assert "Secret" not in redacted and "Other-Pw" not in redacted
    assert redacted.startswith("CREATE USER 'a' WITH PASSWORD '***' ROLE user;")
