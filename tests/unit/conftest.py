"""The unit tests import Locust's modules without gevent's monkey patching.

Importing Locust patches the whole process with gevent unless ``LOCUST_SKIP_MONKEY_PATCH`` is set.
The unit tests drive Locust's pieces (environments, users, coordination) in one plain process, so
Locust is imported here once, unpatched, before any unit test module imports it. The variable is
put back at once, so the Locust processes that other tests start patch themselves as in production.
"""

import os

_PREVIOUS = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
try:
    import locust  # noqa: F401  (the import is the point: later imports of locust.* find it loaded)
finally:
    if _PREVIOUS is None:
        del os.environ["LOCUST_SKIP_MONKEY_PATCH"]
    else:
        os.environ["LOCUST_SKIP_MONKEY_PATCH"] = _PREVIOUS
