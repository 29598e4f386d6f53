"""Golden files: each format's document for each sample type, checked in and compared byte-for-byte as JSON.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/unit/test_formats_golden.py`, then
review the diff: it is the change users' SIEM pipelines will see.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from bridge.events.envelope import parse_envelope
from bridge.events.normalize import normalize
from bridge.events.samples import sample_deliveries
from bridge.formats import FORMATS

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
RECEIVED_AT = datetime(2027, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
CASES = [(name, sample) for name in sorted(FORMATS) for sample in sample_deliveries()]


@pytest.mark.parametrize(("format_name", "sample"), CASES, ids=[f"{n}-{s['type']}" for n, s in CASES])
def test_document_matches_the_golden_file(format_name: str, sample: dict[str, object]) -> None:
    event = normalize(parse_envelope(orjson.dumps(sample)), "prod", RECEIVED_AT)
    document = json.loads(FORMATS[format_name].encode(event))
    path = GOLDEN / format_name / f"{sample['type']}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    assert path.exists(), f"no golden file {path}: run with UPDATE_GOLDEN=1 and review it"
    assert document == json.loads(path.read_text())
