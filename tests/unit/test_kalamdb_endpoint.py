"""KalamDB target URL handling and one-line transport error texts."""

from __future__ import annotations

import pytest

from harness.plan import TargetSpec
from harness.targets.base import TargetError
from harness.targets.http_session import describe
from harness.targets.kalamdb import KalamTarget
from harness.targets.kalamdb.transport import Endpoint


@pytest.mark.parametrize(
    ("url", "base", "ws", "loopback"),
    [
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080", "ws://127.0.0.1:8080/v1/ws", True),
        ("localhost:9000", "http://localhost:9000", "ws://localhost:9000/v1/ws", True),
        ("https://db.example.com", "https://db.example.com:443", "wss://db.example.com:443/v1/ws", False),
        ("http://[::1]:8088", "http://[::1]:8088", "ws://[::1]:8088/v1/ws", True),
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080", "ws://10.0.0.5:8080/v1/ws", False),
        ("http://kalam.local", "http://kalam.local:2900", "ws://kalam.local:2900/v1/ws", False),  # 0.7's port
    ],
)
def test_endpoint_urls(url: str, base: str, ws: str, loopback: bool) -> None:
    endpoint = Endpoint(url)
    assert (endpoint.base_url, endpoint.ws_url, endpoint.loopback) == (base, ws, loopback)


@pytest.mark.parametrize("url", ["ftp://host:1", "http://", "http://host:99999"])
def test_bad_urls_are_one_line_target_errors(url: str) -> None:
    with pytest.raises(TargetError) as err:
        Endpoint(url)
    assert "\n" not in str(err.value)


def test_transport_errors_read_as_one_line() -> None:
    assert describe(ConnectionRefusedError(111, "Connection refused")) == "connection refused"
    assert describe(TimeoutError("timed out")) == "timed out"
    assert describe(OSError("first line\nsecond line")) == "OSError: first line"


@pytest.mark.parametrize("batch_size", [0, 1000, 5000])
def test_snapshot_batches_must_stay_below_max_query_limit(batch_size: int) -> None:
    with pytest.raises(TargetError, match="batch_size must be in 1..999"):
        KalamTarget(TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw", {"batch_size": batch_size}))


def test_table_options_are_the_drivers_own_setting() -> None:
    spec = TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw", {"table_options": {"flush_policy": "rows:10"}})
    assert dict(KalamTarget(spec).settings.table_options) == {"flush_policy": "rows:10"}
    with pytest.raises(TargetError, match="table_options must map"):
        KalamTarget(TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw", {"table_options": "rows:10"}))
