"""The Locust side of the harness: user classes, coordination and load shapes (``locustfiles/live.py``).

Only :func:`users_needed` is exported here; it imports neither Locust nor gevent, so the
runner can size Locust's ``-u`` without being patched.
"""

from locustfiles.population import users_needed

__all__ = ["users_needed"]
