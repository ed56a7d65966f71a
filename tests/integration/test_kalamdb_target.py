"""The KalamDB target driven through the target interface against the reference server.

One server for the module, started with a short WebSocket idle timeout so the heartbeat
test is quick; listeners of the other tests ping every second to stay well inside it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest

from harness.plan import TargetSpec
from harness.targets import create_target
from harness.targets.base import (
    Change,
    Column,
    ColumnType,
    Disconnected,
    Eq,
    Op,
    Outcome,
    Schema,
    TableKind,
    Target,
    TargetError,
)
from harness.targets.kalamdb import auth
from tests.support.refserver import Http, start_refserver

IDLE_TIMEOUT = 2  # seconds of client silence before the server closes a WebSocket
IDLE_ARGS = ("--heartbeat-timeout", str(IDLE_TIMEOUT))
COLUMNS = (
    Column("id", ColumnType.INT64, primary_key=True),
    Column("conversation_id", ColumnType.INT64, not_null=True),
    Column("version", ColumnType.INT32, not_null=True),
    Column("content", ColumnType.TEXT, not_null=True),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with start_refserver(tmp_path_factory.mktemp("refserver"), *IDLE_ARGS) as srv:
        yield srv


def _target(server: object, **options: object) -> Target:
    opts = {"heartbeat_interval": 0.5, "timeout": 5, **options}
    return create_target(TargetSpec("kalamdb", server.url, "root", server.root_password, opts))


def _schema(target: Target, users: dict[str, str] | None = None, table_type: TableKind = TableKind.USER) -> Schema:
    """A fresh namespace and table (and users) per test, created through ``Admin.setup``."""
    tag = secrets.token_hex(4)
    schema = Schema(f"t{tag}", "messages", COLUMNS, table_type=table_type, users=users or {f"u{tag}": "Str0ng!pass1"})
    admin = target.admin()
    try:
        admin.setup(schema)
        admin.setup(schema)  # idempotent
    finally:
        admin.close()
    return schema


def _row(i: int, version: int = 1, content: str | None = None) -> dict[str, object]:
    return {"id": i, "conversation_id": i % 3, "version": version, "content": content or f"row{i}v{version}"}


def _drain(listener, count: int, timeout: float = 10.0) -> list[Change]:
    """Exactly ``count`` changes, then nothing more for a short while."""
    got: list[Change] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        change = listener.recv(0.5)
        if change is not None:
            got.append(change)
    extra = listener.recv(0.3)
    assert extra is None, f"unexpected extra change {extra}"
    assert len(got) == count, f"received {len(got)} of {count}"
    return got


@pytest.mark.timeout(40)
def test_inserts_updates_deletes_arrive_exactly_with_old_values(server) -> None:
    target = _target(server)
    schema = _schema(target)
    (user,) = schema.users
    listener = target.listener(schema, user)
    writer = target.writer(schema, user)
    admin = target.admin()
    try:
        listener.subscribe()
        assert listener.subscription_id and "-" not in listener.subscription_id
        for i in range(100):
            assert writer.insert(_row(i)).outcome is Outcome.OK
        inserts = _drain(listener, 100)
        assert [c.op for c in inserts] == [Op.INSERT] * 100
        assert [c.row["id"] for c in inserts] == list(range(100))
        seq_of = {c.row["id"]: c.server_seq for c in inserts}
        assert all(isinstance(s, int) and s > 0 for s in seq_of.values())
        assert all(abs(c.committed_ns - c.received_ns) < 60e9 for c in inserts)

        for i in range(50):
            res = writer.update(i, {"version": 2, "content": f"row{i}v2"})
            assert (res.outcome, res.rows_affected) == (Outcome.OK, 1), res
        updates = _drain(listener, 50)
        for i, c in enumerate(updates):
            assert c.op is Op.UPDATE
            assert c.row["id"] == i and c.row["version"] == 2 and c.row["content"] == f"row{i}v2"
            assert c.old_row["id"] == i
            assert c.old_row["_seq"] == seq_of[i]  # the previous version's _seq
            assert c.old_row["content"] == f"row{i}v1" and c.old_row["version"] == 1
            assert c.server_seq > seq_of[i]

        for i in range(85, 100):
            assert writer.delete(i).outcome is Outcome.OK
        deletes = _drain(listener, 15)
        assert [c.op for c in deletes] == [Op.DELETE] * 15
        assert [c.old_row["id"] for c in deletes] == list(range(85, 100))
        assert all(c.deleted is True and c.row is None for c in deletes)
        assert listener.last_seq == max(c.server_seq for c in inserts + updates + deletes)

        live = admin.live_subscriptions()
        assert live[listener.subscription_id] == 165

        rows = writer.rows(limit=1000)
        assert len(rows) == 85 and all(isinstance(r["id"], int) and isinstance(r["_seq"], int) for r in rows)
        refused = writer.insert({**_row(1000), "no_such_column": 1})
        assert refused.outcome is Outcome.FAILED and refused.error
    finally:
        listener.close()
        writer.close()
        admin.close()


@pytest.mark.timeout(30)
def test_resume_from_last_seq_delivers_missed_rows_as_snapshot(server) -> None:
    target = _target(server)
    schema = _schema(target)
    (user,) = schema.users
    writer = target.writer(schema, user)
    first = target.listener(schema, user)
    first.subscribe()
    for i in range(10):
        writer.insert(_row(i))
    seen = _drain(first, 10)
    resume_point = first.last_seq
    assert resume_point == seen[-1].server_seq
    first.close()
    with pytest.raises(Disconnected) as closed:
        first.recv(0.1)
    assert closed.value.expected

    for i in range(10, 25):
        assert writer.insert(_row(i)).outcome is Outcome.OK
    assert writer.update(3, {"version": 2, "content": "row3v2"}).outcome is Outcome.OK

    second = target.listener(schema, user)
    try:
        second.subscribe(resume_from=resume_point)
        missed = _drain(second, 16)
        assert all(c.op is Op.SNAPSHOT for c in missed)
        assert sorted(c.row["id"] for c in missed) == [3, *range(10, 25)]
        assert all(c.server_seq > resume_point for c in missed)
        writer.insert(_row(99))
        (live,) = _drain(second, 1)
        assert live.op is Op.INSERT and live.row["id"] == 99
        assert second.last_seq == live.server_seq
    finally:
        second.close()
        writer.close()


@pytest.mark.timeout(30)
def test_user_tables_are_private_per_user(server) -> None:
    target = _target(server)
    tag = secrets.token_hex(3)
    alice, bob = f"alice{tag}", f"bob{tag}"
    schema = _schema(target, users={alice: "Alic3!secret", bob: "B0b!secret99"})
    listen_a, listen_b = target.listener(schema, alice), target.listener(schema, bob)
    filtered = target.listener(schema, alice)
    write_a, write_b = target.writer(schema, alice), target.writer(schema, bob)
    admin = target.admin()
    try:
        listen_a.subscribe()
        listen_b.subscribe()
        filtered.subscribe(Eq("conversation_id", 1))
        for i in range(5):
            write_a.insert(_row(i))
        for i in range(100, 103):
            write_b.insert(_row(i))
        assert sorted(c.row["id"] for c in _drain(listen_a, 5)) == list(range(5))
        assert sorted(c.row["id"] for c in _drain(listen_b, 3)) == [100, 101, 102]
        assert [c.row["id"] for c in _drain(filtered, 2)] == [1, 4]
        assert sorted(r["id"] for r in write_a.rows()) == list(range(5))
        assert sorted(r["id"] for r in write_b.rows()) == [100, 101, 102]
        assert [r["id"] for r in write_a.rows(Eq("conversation_id", 2))] == [2]
        assert (admin.count(schema, as_user=alice), admin.count(schema, as_user=bob)) == (5, 3)
        assert [r["id"] for r in admin.recent(schema, Eq("conversation_id", 1), 5, as_user=alice)] == [4, 1]
        assert [r["id"] for r in admin.recent(schema, None, 2, as_user=bob)] == [102, 101]
        with pytest.raises(TargetError, match="no password"):
            target.writer(schema, "mallory")
    finally:
        for session in (listen_a, listen_b, filtered, write_a, write_b, admin):
            session.close()


@pytest.mark.timeout(30)
def test_heartbeat_keeps_an_idle_listener_alive(server) -> None:
    target = _target(server, heartbeat_interval=0.5)
    schema = _schema(target)
    (user,) = schema.users
    alive = target.listener(schema, user)
    silent = _target(server, heartbeat_interval=60).listener(schema, user)
    writer = target.writer(schema, user)
    try:
        alive.subscribe()
        silent.subscribe()
        end = time.monotonic() + 2 * IDLE_TIMEOUT + 1
        while time.monotonic() < end:
            assert alive.recv(0.5) is None
        with pytest.raises(Disconnected, match="Heartbeat timeout") as dropped:
            silent.recv(0.1)
        assert not dropped.value.expected
        writer.insert(_row(1))
        (change,) = _drain(alive, 1)
        assert change.row["id"] == 1
    finally:
        alive.close()
        silent.close()
        writer.close()


@pytest.mark.timeout(30)
def test_large_rows_arrive_in_gzip_frames(server) -> None:
    target = _target(server)
    schema = _schema(target)
    (user,) = schema.users
    big = "lorem ipsum " * 2000
    gz, plain = target.listener(schema, user), _target(server, compress=False).listener(schema, user)
    writer = target.writer(schema, user)
    try:
        gz.subscribe()
        plain.subscribe()
        assert writer.insert(_row(7, content=big)).outcome is Outcome.OK
        (packed,) = _drain(gz, 1)
        (unpacked,) = _drain(plain, 1)
        assert packed.row["content"] == big == unpacked.row["content"]
        assert packed.wire_bytes < len(big) // 4 < len(big) < unpacked.wire_bytes
    finally:
        gz.close()
        plain.close()
        writer.close()


@pytest.mark.timeout(20)
def test_subscribing_to_an_unknown_table_raises(server) -> None:
    target = _target(server)
    schema = _schema(target)
    missing = Schema(schema.namespace, "no_such_table", COLUMNS, users=schema.users)
    (user,) = schema.users
    listener = target.listener(missing, user)
    with pytest.raises(TargetError, match="no_such_table|NOT_FOUND"):
        listener.subscribe()
    listener.close()


@pytest.mark.timeout(20)
def test_bad_credentials_and_unreachable_server_fail_fast(server) -> None:
    bad = create_target(TargetSpec("kalamdb", server.url, "root", "wrong-password-1"))
    with pytest.raises(TargetError, match="login as 'root'"):
        bad.admin()
    gone = create_target(TargetSpec("kalamdb", "http://127.0.0.1:9", "root", "x", {"timeout": 2}))
    schema = Schema("ns", "t", COLUMNS)
    start = time.monotonic()
    for attempt in (gone.admin, lambda: gone.writer(schema), lambda: gone.listener(schema).subscribe()):
        with pytest.raises(TargetError) as err:
            attempt()
        assert "\n" not in str(err.value) and "refused" in str(err.value)
    assert time.monotonic() - start < 10  # refused at once, no retry loop (a generous bound for a busy machine)


@pytest.mark.timeout(30)
def test_admin_counters_flush_jobs_and_errors(server) -> None:
    target = _target(server)
    schema = _schema(target, table_type=TableKind.SHARED)
    admin = target.admin()
    writer = target.writer(schema)
    try:
        stats = admin.stats()
        assert stats["pid"] == str(server.pid) and "active_subscriptions" in stats
        assert admin.server_pid() == server.pid
        for i in range(3):
            assert writer.insert(_row(i)).outcome is Outcome.OK
        job = admin.flush(schema)
        assert job is not None
        deadline = time.monotonic() + 10
        while admin.job_status(job) != "completed" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert admin.job_status(job) == "completed"
        assert admin.job_status("no-such-job") is None
        assert admin.count(schema) == 3
        newest = admin.recent(schema, Eq("conversation_id", 2), 5)
        assert [r["id"] for r in newest] == [2] and isinstance(newest[0]["_seq"], int)
        missing = Schema(schema.namespace, "no_such_table", COLUMNS, table_type=TableKind.SHARED)
        with pytest.raises(TargetError, match="HTTP 400 .*no_such_table|TABLE_NOT_FOUND"):
            admin.count(missing)
    finally:
        writer.close()
        admin.close()


@pytest.mark.timeout(30)
def test_first_run_setup_sets_the_root_password(tmp_path) -> None:
    with start_refserver(tmp_path, root_password=None) as srv:
        target = create_target(TargetSpec("kalamdb", srv.url, "root", "Fresh-Root-Pass-9"))
        admin = target.admin()
        admin.close()
        assert Http(srv.url).login("root", "Fresh-Root-Pass-9")
        assert Http(srv.url).login("lqh_dba", "Fresh-Root-Pass-9")
        unconfigured = create_target(TargetSpec("kalamdb", srv.url, "someone", "Some-Pass-123"))
        with pytest.raises(TargetError, match="login as 'someone'"):
            unconfigured.admin()


@pytest.mark.timeout(30)
def test_server_loss_makes_writes_indeterminate_and_listeners_disconnected(tmp_path) -> None:
    with start_refserver(tmp_path) as srv:
        target = _target(srv, timeout=2)
        schema = _schema(target)
        (user,) = schema.users
        writer = target.writer(schema, user)
        listener = target.listener(schema, user)
        listener.subscribe()
        assert writer.insert(_row(1)).outcome is Outcome.OK
        # The notification is fanned out after the ack; a shutdown may close the socket
        # before it is sent, so it is taken before the stop.
        assert listener.recv(5.0).row["id"] == 1
        srv.stop()
    started = time.monotonic()
    result = writer.insert(_row(2))
    assert result.outcome is Outcome.INDETERMINATE and result.error and "\n" not in result.error
    assert result.invoke_ns <= result.ack_ns
    with pytest.raises(TargetError):
        writer.rows()
    with pytest.raises(Disconnected) as lost:
        listener.recv(2.0)
    assert not lost.value.expected
    assert time.monotonic() - started < 15  # bounded by the timeouts, not hanging
    listener.close()
    writer.close()


@pytest.mark.timeout(60)
def test_listeners_back_off_through_an_auth_rate_limit(tmp_path) -> None:
    """Twelve listeners opened at once against a 4-per-second limit all subscribe, by backing off."""
    with start_refserver(tmp_path, "--auth-rate-limit", "4") as srv:
        target = _target(srv)
        schema = _schema(target, table_type=TableKind.SHARED)
        listeners = [target.listener(schema) for _ in range(12)]
        errors: list[BaseException] = []

        def subscribe(listener) -> None:
            try:
                listener.subscribe()
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        started = time.monotonic()
        threads = [threading.Thread(target=subscribe, args=(lst,)) for lst in listeners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(40)
        try:
            assert not errors, errors
            assert all(lst.subscription_id for lst in listeners)
            assert time.monotonic() - started > 1.0  # 12 at 4/s span at least three one-second windows
        finally:
            for lst in listeners:
                lst.close()


@pytest.mark.timeout(20)
def test_rejected_cached_tokens_are_renewed(server) -> None:
    target = _target(server)
    schema = _schema(target)
    (user,) = schema.users
    writer = target.writer(schema, user)
    key = (target.endpoint.base_url, user)
    try:
        auth._TOKENS[key].access = "not-a-valid-jwt"
        assert writer.insert(_row(1)).outcome is Outcome.OK
        assert auth._TOKENS[key].access != "not-a-valid-jwt"
        auth._TOKENS[key].access = "not-a-valid-jwt"
        listener = target.listener(schema, user)
        listener.subscribe(snapshot=True)
        (snap,) = _drain(listener, 1)
        assert snap.op is Op.SNAPSHOT and snap.row["id"] == 1
        listener.close()
    finally:
        writer.close()
