"""Exact verdicts end to end: the reference server sends the frames the checker once misjudged (issue 8).

Each case runs one scenario against the embedded server with one ``--fault`` that alters rows on the
wire. The run must end within its time bound with a verdict: FAIL by the criterion the anomaly belongs
to, each anomaly counted exactly, a witness of it in ``delivery.json``, and the criteria the fault does
not touch still passing.
"""

from __future__ import annotations

import json

import pytest

from tests.support.runs import run_with_fault
from tests.support.verdicts import SMALL_RUN_CRITERIA, criteria_of

BIG = str(2**64)  # beyond the 64 bits of an int64 column
ROW_0 = str(1 << 32)  # writer 1's row 0: a row id no writer ever makes

CASES = [
    # case, fault, scenario, criterion that fails, exact non-zero counts, criteria that still pass
    # 1: a change whose row is a positional array; one per run (the resumed subscription counts from 1 again)
    ("1-malformed-frame", "malformed-row:every=60", "live.inserts", "SC-051", {"malformed": 1}, ["SC-054"]),
    # 4: a tombstone naming row 0 (its content is then not that row's either, and it comes after row 14's
    # delete), the real delete never arrives
    (
        "4-tombstone-row-0",
        f"mutate:column=id,action=set,value={ROW_0},op=delete,every=15",
        "live.deletes",
        "SC-051",
        {"unexpected": 1, "lost": 1, "out_of_order": 1, "delete_value_errors": 1},
        ["SC-054", "SC-057"],
    ),
    # 5: a wseq beyond 64 bits in insert 100
    (
        "5-bigint-beyond-64-bits",
        f"mutate:column=wseq,action=set,value={BIG},op=insert,every=100",
        "live.inserts",
        "SC-051",
        {"malformed": 1, "lost": 1},
        ["SC-054", "SC-057"],
    ),
    # 8: garbled and content-less tombstones
    (
        "8-garbled-tombstone",
        "mutate:column=content,action=set,value=garbled,op=delete,every=5",
        "live.deletes",
        "SC-053",
        {"delete_value_errors": 3},
        ["SC-051", "SC-054", "SC-057"],
    ),
    (
        "8-tombstone-without-content",
        "mutate:column=content,action=drop,op=delete,every=5",
        "live.deletes",
        "SC-053",
        {"delete_value_errors": 3},
        ["SC-051", "SC-054", "SC-057"],
    ),
    # 9: every column the writer wrote is checked
    (
        "9-update-without-content",
        "mutate:column=content,action=drop,op=update,every=10",
        "live.updates",
        "SC-052",
        {"new_value_errors": 5},
        ["SC-051", "SC-054", "SC-057"],
    ),
    (
        "9-null-content",
        "mutate:column=content,action=null,op=insert,every=10",
        "live.updates",
        "SC-052",
        {"new_value_errors": 5},
        ["SC-051", "SC-054", "SC-057"],
    ),
    (
        "9-wrong-conversation-unfiltered",
        "mutate:column=conversation_id,action=set,value=2,op=insert,every=10",
        "live.updates",
        "SC-052",
        {"new_value_errors": 5},
        ["SC-051", "SC-054", "SC-057"],
    ),
    (
        "9-version-1.9",
        "mutate:column=version,action=set,value=1.9,op=insert,every=25",
        "live.inserts",
        "SC-051",
        {"malformed": 4, "lost": 4},
        ["SC-054", "SC-057"],
    ),
    # 10: live.ordering's insert m2 held back until after the delete of m1, which its writer made later
    (
        "10-delete-before-an-earlier-insert",
        "reorder:every=2,op=insert",
        "live.ordering",
        "SC-051",
        {"out_of_order": 1},
        ["SC-052", "SC-053", "SC-054", "SC-057"],
    ),  # fmt: skip
]
ANOMALY_KEYS = (
    "lost", "duplicates", "out_of_order", "unexpected", "aborted", "outside_filter", "other_user", "stale",
    "malformed", "old_value_errors", "new_value_errors", "delete_flag_errors", "delete_value_errors", "ended_early",
)  # fmt: skip


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("fault", "scenario", "criterion", "counts", "still_pass"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_frame_gives_fail_with_exact_counts_and_a_witness(
    tmp_path, fault: str, scenario: str, criterion: str, counts: dict[str, int], still_pass: list[str]
) -> None:
    code, verdict, run_dir = run_with_fault(tmp_path, scenario, fault, criteria=SMALL_RUN_CRITERIA)
    found = criteria_of(verdict)
    assert code == 1 and verdict["verdict"] == "fail"
    assert found[criterion]["verdict"] == "fail", found[criterion]
    for other in still_pass:
        assert found[other]["verdict"] == "pass", (other, found[other])
    delivery = json.loads((run_dir / "delivery.json").read_text())
    nonzero = {k: delivery["totals"][k] for k in ANOMALY_KEYS if delivery["totals"][k]}
    assert nonzero == counts, delivery["witnesses"][:5]
    kinds = {w["kind"] for w in delivery["witnesses"]}
    assert set(counts) <= kinds, delivery["witnesses"][:5]
