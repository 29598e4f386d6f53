"""Golden files: each format's document for each sample type (and one unknown type), checked in.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/unit/test_formats_golden.py`, then
review the diff: it is the change users' SIEM pipelines will see. Without UPDATE_GOLDEN a difference fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bridge.formats import FORMATS
from tests.schema_validation import case_name, deliveries, normalized

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = [(name, delivery) for name in sorted(FORMATS) for delivery in deliveries()]


@pytest.mark.parametrize(("format_name", "delivery"), CASES, ids=[f"{n}-{case_name(d)}" for n, d in CASES])
def test_document_matches_the_golden_file(format_name: str, delivery: dict[str, object]) -> None:
    document = json.loads(FORMATS[format_name].encode(normalized(delivery)))
    path = GOLDEN / format_name / f"{case_name(delivery)}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    assert path.exists(), f"no golden file {path}: run with UPDATE_GOLDEN=1 and review it"
    assert document == json.loads(path.read_text()), f"{path} differs: if intended, UPDATE_GOLDEN=1"


def test_every_golden_file_belongs_to_a_case() -> None:
    """A renamed or removed type must not leave a stale golden file that nobody checks any more."""
    expected = {f"{name}/{case_name(delivery)}.json" for name, delivery in CASES}
    present = {str(path.relative_to(GOLDEN)) for path in GOLDEN.glob("*/*.json")}
    assert present == expected
