"""The harness's options on Locust's own command line: ``--scenario``, ``--target``, ``--target-url`` and the rest.

They are added from Locust's ``init_command_line_parser`` event, so ``locust --help`` lists them,
Locust's config files and ``LQH_*`` environment variables set them, and the web UI shows the
scenario as a choice among the catalogue. The admin password never goes on the command line: it
comes from ``$KALAMDB_PASSWORD`` or from the file ``--target-password-file`` names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.orchestration.session import SessionOptions

TARGETS = ("ref", "kalamdb")
PASSWORD_ENV = "KALAMDB_PASSWORD"


def add_arguments(parser: Any) -> None:
    """Add the harness's options to Locust's parser (a ``LocustArgumentParser``)."""
    from harness.orchestration.session import scenario_names

    parser.add_argument(
        "--scenario", choices=scenario_names(), default=None, env_var="LQH_SCENARIO", include_in_web_ui=True,
        help="the catalogue scenario to run (`lqharness list`); the web UI offers the catalogue when it is not given",
    )  # fmt: skip
    parser.add_argument(
        "--target", choices=TARGETS, default="ref", env_var="LQH_TARGET",
        help="ref: start the reference server (default); kalamdb: the server at --target-url",
    )  # fmt: skip
    parser.add_argument(
        "--target-url", default=None, env_var="LQH_TARGET_URL", help="URL of an external target (implies kalamdb)"
    )
    parser.add_argument(
        "--target-user", default=os.environ.get("KALAMDB_USER", "root"), help="admin user of --target-url (root)"
    )
    parser.add_argument(
        "--target-password-file", default=None, metavar="FILE",
        help=f"file holding the admin password of --target-url (default: ${PASSWORD_ENV})",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", default=False, help="the scenario's quick profile")
    parser.add_argument("--runs-dir", default="runs", metavar="DIR", help="where run folders go (default: runs)")
    parser.add_argument("--criteria", default=None, metavar="FILE", help="criteria file (TOML) overriding the defaults")
    parser.add_argument("--history", default=None, metavar="URL", help="run history URL or file")


def _password(parsed: Any) -> str | None:
    path = parsed.target_password_file
    if not path:
        return os.environ.get(PASSWORD_ENV)
    try:
        return Path(path).read_text().strip() or None
    except OSError as exc:
        raise HarnessError(f"cannot read --target-password-file {path}: {exc.strerror or exc}") from exc


def session_options(parsed: Any, workers: int) -> SessionOptions:
    """The session options from Locust's parsed options; a missing or wrong one is a ``HarnessError``."""
    from harness.orchestration.runner import RunOptions
    from harness.orchestration.session import SessionOptions

    if not parsed.scenario:
        raise HarnessError("no scenario: pass --scenario NAME (`lqharness list` shows them)")
    if parsed.target == "kalamdb" and not parsed.target_url:
        raise HarnessError("--target kalamdb needs --target-url URL (only the reference server is started here)")
    criteria = Path(parsed.criteria) if parsed.criteria else None
    if criteria is not None and not criteria.is_file():
        raise HarnessError(f"criteria file not found: {criteria}")
    password = _password(parsed) if parsed.target_url else None
    if parsed.target_url and not password:
        raise HarnessError(f"--target-url needs the admin password: ${PASSWORD_ENV} or --target-password-file")
    run = RunOptions(
        target="kalamdb" if parsed.target_url else parsed.target,
        target_url=parsed.target_url,
        user=parsed.target_user,
        password=password,
        workers=workers,
        quick=bool(parsed.quick),
        out_dir=Path(parsed.runs_dir),
        criteria=criteria,
        history=parsed.history,
    )
    return SessionOptions(scenario=parsed.scenario, run=run, workers=workers)
