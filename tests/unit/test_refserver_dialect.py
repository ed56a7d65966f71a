"""The reference server's SQL front-end: splitting, literal normalization, KalamDB commands."""

from __future__ import annotations

import pytest
from sqlglot import exp

from refserver import dialect as d
from refserver.errors import SqlError


def test_split_ignores_semicolons_in_strings_and_comments():
    sql = "INSERT INTO a.b (x) VALUES ('a;b'); -- c;d\nSELECT 1 /* ; */; ;"
    assert d.split_statements(sql) == ["INSERT INTO a.b (x) VALUES ('a;b')", "-- c;d\nSELECT 1 /* ; */"]


def test_normalize_lifts_literals_but_not_identifiers_or_params():
    template, values = d.normalize("SELECT t1.c2 FROM ns.t1 WHERE a = 'it''s' AND b > 2.5 AND c = $1 LIMIT 10")
    assert values == ["it's", 2.5, 10]
    assert "t1.c2" in template and "ns.t1" in template and "$1 " in template and "'" not in template
    assert d.normalize("CREATE NAMESPACE x") is None


def test_plan_cache_shares_one_plan_between_literal_variants():
    cache = d.PlanCache()
    first = cache.plan("INSERT INTO a.b (x, y) VALUES (1, 'p')")
    second = cache.plan("INSERT INTO a.b (x, y) VALUES (2, 'q')")
    assert first.stmt is second.stmt and first.literals == [1, "p"] and second.literals == [2, "q"]
    assert cache.plan("INSERT INTO a.b (x, y) VALUES (1, 'p')") is first
    assert len(cache) == 2


def test_params_without_spaces_parse():
    stmt = d.parse_statement("INSERT INTO a.b (x,y) VALUES ($1,$2)")
    assert isinstance(stmt, d.Query)
    (row,) = stmt.tree.expression.expressions
    assert [p.this.this for p in row.expressions if isinstance(p, exp.Parameter)] == ["1", "2"]
    assert [c.this for c in stmt.tree.this.expressions] == ["x", "y"]


def test_create_table_with_kind_options_and_types():
    stmt = d.parse_statement(
        "CREATE USER TABLE IF NOT EXISTS chat.m (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), f FILE, "
        "e EMBEDDING(3), n DECIMAL(10, 2) NOT NULL) WITH (FLUSH_POLICY = 'rows:10', TTL_SECONDS = 5, X = TRUE)"
    )
    assert isinstance(stmt, d.CreateTable)
    assert (stmt.namespace, stmt.name, stmt.kind, stmt.if_not_exists) == ("chat", "m", "USER", True)
    assert stmt.options == {"FLUSH_POLICY": "rows:10", "TTL_SECONDS": 5, "X": True}
    assert [(c.name, c.type_name, c.type_params) for c in stmt.columns] == [
        ("id", "BIGINT", ()),
        ("f", "FILE", ()),
        ("e", "EMBEDDING", (3,)),
        ("n", "DECIMAL", (10, 2)),
    ]
    assert stmt.columns[0].primary_key and stmt.columns[3].not_null


def test_kalamdb_commands():
    user = d.parse_statement("CREATE USER 'alice' WITH PASSWORD 'Str0ngPass!' ROLE dba EMAIL 'a@x'")
    assert (user.user, user.password, user.role, user.email) == ("alice", "Str0ngPass!", "dba", "a@x")
    assert d.parse_statement("DROP USER IF EXISTS 'bob'") == d.DropUser("DROP USER IF EXISTS 'bob'", "bob", True)
    wrapped = d.parse_statement("EXECUTE AS USER 'alice' (SELECT * FROM chat.m WHERE id = $1)")
    assert wrapped.user == "alice" and isinstance(wrapped.inner, d.Query)
    flush = d.parse_statement("STORAGE FLUSH TABLE chat.m")
    assert (flush.namespace, flush.table) == ("chat", "m")
    assert d.parse_statement("STORAGE FLUSH ALL IN NAMESPACE chat").table is None
    assert d.parse_statement("KILL LIVE QUERY 'root-abc-s1'").live_id == "root-abc-s1"
    assert d.parse_statement('KILL LIVE QUERY "u-c-s"').live_id == "u-c-s"
    assert d.parse_statement("DROP NAMESPACE IF EXISTS keep CASCADE").cascade is True
    assert d.parse_statement("DROP USER TABLE ns.t").name == "t"


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELEKT 1", "Unsupported statement: SELEKT 1"),
        ("STORAGE FLUSH TABLE t", "needs a namespace-qualified table name"),
        ("EXECUTE AS USER 'a' SELECT 1", "needs one statement in parentheses"),
        ("CREATE USER 'a' WITH ROLE user", "Expected WITH PASSWORD"),
        ("KILL EVERYTHING", "Unsupported statement: KILL EVERYTHING"),
    ],
)
def test_bad_statements_are_invalid_sql(sql, reason):
    with pytest.raises(SqlError, match=reason) as err:
        d.parse_statement(sql)
    assert err.value.code == "INVALID_SQL"
