"""The exit codes of ``lqharness``, and the one way the codes of several runs combine into one.

The exit code is the verdict (DESIGN.md, "Data flow"): CI jobs and scripts branch on it, so each
value is named here once and every command, the runner and the run-folder contract use these names.
"""

from __future__ import annotations

from collections.abc import Iterable

PASS = 0  # every criterion that applies passed
FAIL = 1  # a criterion failed: the target broke a promise the scenario checks
INCONCLUSIVE = 2  # no verdict could be reached: missing or damaged data, a saturated load generator
HARNESS_ERROR = 2  # bad input or a harness failure (HarnessError): no verdict either, so the same code
INTERRUPTED = 130  # stopped by Ctrl-C: 128 + SIGINT, as shells report a process ended by that signal


def combine(codes: Iterable[int]) -> int:
    """The exit code of a group of runs: FAIL if any failed, else INCONCLUSIVE if any did not pass, else PASS.

    A failure wins because it is evidence against the target; any other code that is not a pass
    (inconclusive, harness error) leaves the group without a verdict. No codes at all is a pass.
    """
    seen = list(codes)
    if FAIL in seen:
        return FAIL
    if any(code != PASS for code in seen):
        return INCONCLUSIVE
    return PASS
