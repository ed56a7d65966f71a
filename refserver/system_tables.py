"""The ``system.*`` tables the server answers SELECTs on: their columns and KalamDB types.

``system.live`` and ``system.stats`` are computed on demand (the engine refreshes them into TEMP
tables before a query); the others are real SQLite tables of the store.
"""

from __future__ import annotations

from refserver.values import BIGINT, INT, JSON, TEXT, TIMESTAMP, KType

SYSTEM_TABLES: dict[str, list[tuple[str, KType]]] = {
    "system.live": [
        ("live_id", TEXT),
        ("connection_id", TEXT),
        ("subscription_id", TEXT),
        ("namespace_id", TEXT),
        ("table_name", TEXT),
        ("user_id", TEXT),
        ("query", TEXT),
        ("options", JSON),
        ("status", TEXT),
        ("created_at", TIMESTAMP),
        ("last_update", TIMESTAMP),
        ("changes", BIGINT),
        ("node_id", BIGINT),
        ("last_ping_at", TIMESTAMP),
    ],
    "system.stats": [("metric_name", TEXT), ("metric_value", TEXT)],
    "system.jobs": [
        ("job_id", TEXT),
        ("job_type", TEXT),
        ("status", TEXT),
        ("message", TEXT),
        ("exception_trace", TEXT),
        ("retry_count", INT),
        ("created_at", TIMESTAMP),
        ("started_at", TIMESTAMP),
        ("finished_at", TIMESTAMP),
        ("node_id", BIGINT),
        ("parameters", JSON),
    ],
    "system.users": [
        ("user_id", TEXT),
        ("username", TEXT),
        ("role", TEXT),
        ("email", TEXT),
        ("auth_type", TEXT),
        ("created_at", TIMESTAMP),
        ("updated_at", TIMESTAMP),
        ("last_seen", TIMESTAMP),
    ],
    "system.tables": [
        ("table_id", TEXT),
        ("namespace_id", TEXT),
        ("table_name", TEXT),
        ("table_type", TEXT),
        ("access_level", TEXT),
        ("options", JSON),
        ("created_at", TIMESTAMP),
    ],
    "system.namespaces": [
        ("namespace_id", TEXT),
        ("name", TEXT),
        ("created_at", TIMESTAMP),
        ("table_count", BIGINT),
    ],
}
EPHEMERAL = ("system.live", "system.stats")  # computed on demand into TEMP tables
