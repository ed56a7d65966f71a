"""The KalamDB v1 target: JWT login, ``/v1/api/sql`` over HTTP, live queries over ``/v1/ws``.

Speaks only the protocol of ``docs/kalamdb-protocol.md`` (``/work/shared/docs``), so it
drives a real KalamDB and the reference server alike. Everything is synchronous and
gevent-friendly. The package is split along the protocol's seams:

- ``transport``: the URL, and one keep-alive HTTP connection (geventhttpclient)
- ``auth``: login, the process-wide token cache, the first-run root password
- ``settings``: the driver's options, read once from the target spec
- ``sql``: ``POST /v1/api/sql`` as one user, and the admin and writer sessions on it
- ``listener``: one live query on its own WebSocket (websocket-client), heartbeat and resume
- ``dialect``: the statement text, from the interface's table kinds, column types and filters
- ``wire``: the pure encoding rules of replies and messages (values, frames, ``Change``)
- ``generation``: which protocol generation each server speaks, once detected (and 0.7's version domains)
- ``target``: ``KalamTarget``, the factory the harness gets from ``create_target``

The rules that differ between the protocol generations (0.4: Snowflake ``_seq``, numeric
cursors, a resume by current rows; 0.7: ``_version``, string cursors, replay or ``CURSOR_EXPIRED``,
the JWT subprotocol; ``docs/kalamdb-0.7.md``) are all in ``dialect``, ``wire`` and the listener's
subscribe exchange.
"""

from harness.targets.kalamdb.target import KalamTarget

__all__ = ["KalamTarget"]
