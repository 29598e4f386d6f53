"""Every webhook type of the vendor's spec is either a catalog row or unmapped with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from bridge.events.catalog import BY_NAME, SPEC_WEBHOOK_TYPES, UNMAPPED_SPEC_TYPES
from bridge.events.envelope import parse_envelope
from bridge.events.normalize import normalize
from tests.fake_admin_api import SCHEMAS


def test_the_catalog_and_its_unmapped_list_cover_the_specs_webhook_types_once_each() -> None:
    spec = SCHEMAS["components"]["schemas"]["WebhookEvent"]["properties"]["type"]["enum"]
    assert sorted(SPEC_WEBHOOK_TYPES) == sorted(spec) and len(spec) == 25
    assert not set(BY_NAME) & set(UNMAPPED_SPEC_TYPES)
    assert all(len(reason) > 40 for reason in UNMAPPED_SPEC_TYPES.values())


@pytest.mark.parametrize("type_name", sorted(UNMAPPED_SPEC_TYPES))
def test_an_unmapped_spec_type_is_kept_whole_in_the_unknown_topic(type_name: str) -> None:
    data = {"subject": "s-1", "subjectName": "ops.admin", "entityId": "t-1", "entityType": "TOKENS"}
    body = orjson.dumps(
        {
            "id": "d-1",
            "type": type_name,
            "accountId": "a-1",
            "eventTime": "2027-01-01T00:00:00Z",
            "data": data,
        }
    )
    event = normalize(parse_envelope(body), "prod", datetime(2027, 1, 1, tzinfo=UTC))
    assert (event.topic, event.category, event.action) == ("unknown", "unknown", type_name)
    assert event.data == data
