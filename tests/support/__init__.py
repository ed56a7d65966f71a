"""Helpers shared by the unit and integration tests; nothing here is collected as a test.

- ``delivery_world``: a hand-driven world of writers and notifications for tracker and checker tests;
- ``synthetic``: synthetic run folders (``Synthetic``, ``write_run``) for the judge and report tests;
- ``refserver``: the reference server as a subprocess, and raw HTTP and WebSocket clients for it;
- ``locust_flow``: plans and a Locust launcher that run a small plan through ``locustfiles/live.py``.
"""
