"""The Parse target: Parse Server 9.10.0 REST writes and LiveQuery events, on PostgreSQL.

Speaks the protocol of ``docs/parse-livequery.md`` (``/work/shared/docs``). The package:

- ``wire``: class names, field types, the ``where`` of a filter, LiveQuery events as ``Change``s
- ``rest``: one keep-alive HTTP connection with the app id and master key; the admin and writer sessions
- ``listener``: one LiveQuery subscription on its own WebSocket
- ``target``: ``ParseTarget``, the factory the harness gets from ``create_target``, and what Parse lacks
- ``node/``: the pinned ``package.json`` / ``package-lock.json`` and the launcher ``server.js``
  (installed and started by ``harness.orchestration.parse_process``)
"""

from harness.targets.parse.target import ParseTarget

__all__ = ["ParseTarget"]
