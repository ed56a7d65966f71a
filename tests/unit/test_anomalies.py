"""The anomaly vocabulary: one definition per member, the docs generated from it, old keys mapped."""

from pathlib import Path

import pytest

from harness.delivery.anomalies import PHANTOM, Anomaly, Witness, definitions_markdown, kinds_of, phantom_total

DOCS = Path(__file__).resolve().parents[2] / "docs" / "run-folder.md"


def test_every_anomaly_has_a_one_line_definition() -> None:
    for kind in Anomaly:
        assert kind.definition and "\n" not in kind.definition, kind


def test_run_folder_doc_lists_every_anomaly_as_the_enum_defines_it() -> None:
    text = DOCS.read_text()
    listed = text.split("<!-- anomalies:begin -->\n", 1)[1].split("\n<!-- anomalies:end -->", 1)[0]
    assert listed == definitions_markdown()


def test_old_phantom_key_stands_for_the_family() -> None:
    assert kinds_of("phantom") == PHANTOM
    assert kinds_of("duplicates") == {Anomaly.DUPLICATE} and kinds_of("dup") == frozenset()
    assert phantom_total({"phantom": 4}) == 4
    assert phantom_total({"phantom": 4, "unexpected": 1, "malformed": 2}) == 3


@pytest.mark.parametrize("row", [None, 0, 7])
def test_witness_round_trips_and_never_raises_on_odd_rows(row: int | None) -> None:
    w = Witness(Anomaly.UNEXPECTED, "l1", "no delivery", "a delete", writer=3, row=row, op="delete")
    data = w.to_dict()
    assert Witness.from_dict(data) == w
    assert data["row_id"] == (None if row is None else 3 << 32 | row)
    assert data["detail"].endswith("expected no delivery, observed a delete")
