"""Errors that end a command with a one-line message instead of a traceback."""

from harness import exitcodes


class HarnessError(Exception):
    """A user-facing failure: bad input, unusable target, unreadable run folder.

    ``lqharness`` prints ``lqharness: error: <message>`` and exits with ``exit_code``.
    """

    def __init__(self, message: str, exit_code: int = exitcodes.HARNESS_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code
