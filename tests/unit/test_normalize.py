"""Envelope validation and normalization of every catalog type (driven by the catalog, not a copy of it)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bridge.events.catalog import EVENT_TYPES, lookup
from bridge.events.envelope import EnvelopeError, parse_envelope
from bridge.events.model import Party
from bridge.events.normalize import REASON_KEYS, REASON_LIKE, _reason, normalize
from bridge.events.samples import sample_deliveries

RECEIVED = datetime(2027, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)


def _fields(value: Any) -> dict[str, Any]:
    """A dataclass's fields by name, one level deep (`dataclasses.asdict` would turn the catalog row and the
    parties into dicts too)."""
    return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}


def test_the_catalog_has_the_sixteen_documented_types_once_each() -> None:
    names = [row.name for row in EVENT_TYPES]
    assert len(names) == 16 == len(set(names))
    assert {row.topic for row in EVENT_TYPES} == {"authentication", "user", "authenticator"}


@pytest.mark.parametrize("sample", sample_deliveries(), ids=lambda s: s["type"])
def test_every_sample_normalizes_with_the_catalog_row(sample: dict[str, object]) -> None:
    event = normalize(parse_envelope(orjson.dumps(sample)), "prod", RECEIVED)
    row = lookup(str(sample["type"]))
    assert row is not None and event.catalog_row is row
    assert event.classification in (row.classification, *row.variants.values())
    assert (event.category, event.action) == (row.category, row.action)
    assert event.outcome == event.classification.outcome
    assert event.data == sample["data"]
    assert event.key == (event.user.name or event.user.id or event.account_id)


def test_admin_created_user_names_the_admin_as_subject_and_the_new_user_as_user() -> None:
    sample = next(s for s in sample_deliveries() if s["type"] == "user.created")
    event = normalize(parse_envelope(orjson.dumps(sample)), "prod", RECEIVED)
    assert event.initiated_by == "admin" and event.admin_role == "Help Desk Administrator"
    assert event.subject.name == "ops.admin"
    assert (event.user.id, event.user.name) == ("7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d", "tomas.reyes")
    assert event.key == "tomas.reyes"


def test_admin_face_enrollment_targets_the_user_named_in_entity_attributes() -> None:
    sample = next(s for s in sample_deliveries() if s["type"] == "face.biometric.created")
    event = normalize(parse_envelope(orjson.dumps(sample)), "prod", RECEIVED)
    assert event.user.name == "sam.whitford" and event.user.id is None
    assert event.entity is not None and event.entity.type == "FACE"
    assert event.authenticator == "face"
    assert event.key == "sam.whitford"  # the affected user, not the admin who acted


def test_every_envelope_and_event_field_holds_the_value_it_is_named_for() -> None:
    """The envelope and the event are built positionally (bridge/events/normalize.py): a value in a
    neighbour's place would show here, each value being distinct."""
    body = {
        "id": "delivery-1",
        "type": "user.created",
        "accountId": "tenant-2",
        "eventTime": "2027-03-01T11:59:58.5+01:00",
        "data": {
            "subject": "admin-id-3",
            "subjectName": "admin-name-4",
            "subjectType": "USER",
            "subscriberAdminRoleName": "role-5",
            "resourceName": "resource-6",
            "entityType": "USERS",
            "entityId": "user-id-7",
            "entityName": "user-name-8",
            "sourceIp": "192.0.2.9",
            "failureReason": "reason-10",
        },
    }
    envelope = parse_envelope(orjson.dumps(body))
    occurred = datetime(2027, 3, 1, 10, 59, 58, 500000, tzinfo=UTC)
    assert _fields(envelope) == {
        "id": "delivery-1",
        "type": "user.created",
        "account_id": "tenant-2",
        "event_time": occurred,
        "event_time_text": "2027-03-01T11:59:58.5+01:00",
        "data": body["data"],
    }
    event = normalize(envelope, "prod", RECEIVED)
    row = lookup("user.created")
    assert row is not None
    assert _fields(event) == {
        "id": "delivery-1",
        "type": "user.created",
        "catalog_row": row,
        "classification": row.classify(None),
        "category": row.category,
        "action": row.action,
        "outcome": row.classify(None).outcome,
        "account_id": "tenant-2",
        "occurred_at": occurred,
        "occurred_at_text": "2027-03-01T11:59:58.5+01:00",
        "received_at": RECEIVED,
        "webhook": "prod",
        "subject": Party("admin-id-3", "admin-name-4", "USER"),
        "user": Party("user-id-7", "user-name-8", "USER"),
        "entity": Party("user-id-7", "user-name-8", "USERS"),
        "initiated_by": "admin",
        "admin_role": "role-5",
        "source_ip": "192.0.2.9",
        "resource": "resource-6",
        "authenticator": None,
        "reason": "reason-10",
        "data": body["data"],
    }


def test_self_service_events_have_the_subject_as_user() -> None:
    sample = next(s for s in sample_deliveries() if s["type"] == "passkey.created")
    event = normalize(parse_envelope(orjson.dumps(sample)), "prod", RECEIVED)
    assert event.initiated_by == "user" and event.user == event.subject


def test_sign_in_carries_the_method_as_authenticator() -> None:
    sample = next(s for s in sample_deliveries() if s["type"] == "authentication.failed")
    event = normalize(parse_envelope(orjson.dumps(sample)), "prod", RECEIVED)
    assert (event.outcome, event.authenticator, event.source_ip) == ("failure", "OTP", "198.51.100.77")


def test_unknown_type_is_kept_and_routed_to_unknown() -> None:
    body = (
        b'{"id":"x","type":"device.enrolled","accountId":"a",'
        b'"eventTime":"2027-01-01T00:00:00+02:00","data":{}}'
    )
    event = normalize(parse_envelope(body), "prod", RECEIVED)
    assert (event.category, event.topic, event.outcome, event.action) == (
        "unknown",
        "unknown",
        "unknown",
        "device.enrolled",
    )
    assert event.occurred_at == datetime(2026, 12, 31, 22, 0, tzinfo=UTC)
    assert event.key == "a"


def test_lenient_data_fields_of_the_wrong_type_are_ignored_not_fatal() -> None:
    body = orjson.dumps(
        {
            "id": "x",
            "type": "user.deleted",
            "accountId": "a",
            "eventTime": "2027-01-01T00:00:00Z",
            "data": {"subject": 42, "entityAttributes": "nope", "resourceName": None, "extra": [1]},
        }
    )
    event = normalize(parse_envelope(body), "prod", RECEIVED)
    assert event.subject.id is None and event.resource is None and event.data["extra"] == [1]


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"not json", "invalid_json", "not valid JSON"),
        (b"[1,2]", "not_an_object", "must be a JSON object"),
        (
            b'{"type":"x","accountId":"a","eventTime":"2027-01-01T00:00:00Z","data":{}}',
            "invalid_field",
            "field 'id' must be a non-empty string, got missing",
        ),
        (
            b'{"id":7,"type":"x","accountId":"a","eventTime":"2027-01-01T00:00:00Z","data":{}}',
            "invalid_field",
            "field 'id' must be a non-empty string, got int 7",
        ),
        (
            b'{"id":"i","type":"x","accountId":"a","eventTime":"yesterday","data":{}}',
            "invalid_event_time",
            "eventTime 'yesterday'",
        ),
        (
            b'{"id":"i","type":"x","accountId":"a","eventTime":"2027-01-01T00:00:00","data":{}}',
            "invalid_event_time",
            "no UTC offset",
        ),
        (
            b'{"id":"i","type":"x","accountId":"a","eventTime":"2027-01-01T00:00:00Z","data":[]}',
            "invalid_field",
            "field 'data' must be a JSON object",
        ),
    ],
)
def test_invalid_envelopes_name_the_problem(body: bytes, code: str, message: str) -> None:
    with pytest.raises(EnvelopeError) as raised:
        parse_envelope(body)
    assert raised.value.reason == code and message in str(raised.value)


def test_record_time_is_event_time_unless_far_in_the_future() -> None:
    from datetime import timedelta

    from bridge.routing import record_time

    sample = next(s for s in sample_deliveries() if s["type"] == "user.created")
    event = normalize(parse_envelope(orjson.dumps(sample)), "prod", RECEIVED)
    past = dataclasses.replace(event, occurred_at=RECEIVED - timedelta(days=3))
    near = dataclasses.replace(event, occurred_at=RECEIVED + timedelta(minutes=10))
    far = dataclasses.replace(event, occurred_at=RECEIVED + timedelta(hours=2))
    assert record_time(past) == past.occurred_at
    assert record_time(near) == near.occurred_at
    assert record_time(far) == RECEIVED


# ------------------------------------------------------------------------------ the reason, against its rule

_KEY_PARTS = st.sampled_from(
    ["reason", "Reason", "failure", "error", "ERROR", "cause", "Denied", "detail", "x"]
)
_KEYS = st.one_of(
    st.sampled_from(REASON_KEYS),
    st.sampled_from(["message", "userId", "state", "errorCode"]),
    st.lists(_KEY_PARTS, min_size=1, max_size=3).map("".join),
    st.text(max_size=8),
    st.text(min_size=300, max_size=400),  # key sets too long to remember
)
_INTEGERS = st.integers(-(2**63), 2**64 - 1)  # what JSON parsing yields
_VALUES = st.one_of(
    st.none(),
    st.just(""),
    st.just([]),
    st.just({}),
    st.text(max_size=5),
    _INTEGERS,
    st.booleans(),
    st.dictionaries(st.text(max_size=3), _INTEGERS, max_size=2),
)
_OBJECTS = st.dictionaries(_KEYS, _VALUES, max_size=6)


def reason_by_its_rule(data: dict[str, Any], attributes: dict[str, Any]) -> str | None:
    """The reason as docs/siem.md states it, key by key: the guessed keys' texts (entityAttributes
    first), then every other reason-like key's non-empty value as `key: value`."""
    sources = (attributes, data)
    parts = [
        value
        for source in sources
        for key in REASON_KEYS
        if isinstance(value := source.get(key), str) and value
    ]
    for source in sources:
        for key, value in source.items():
            if key not in REASON_KEYS and REASON_LIKE.search(key) and value not in (None, "", [], {}):
                parts.append(f"{key}: {value if isinstance(value, str) else orjson.dumps(value).decode()}")
    return "; ".join(parts) or None


@settings(max_examples=400, deadline=None)
@given(_OBJECTS, _OBJECTS)
@example({"reason": "b", "errorCode": 7}, {"failureReason": "a", "reason": "c", "x": {}})
@example({"causeOfDenial": ""}, {"deniedBy": "policy", "detail": [1], "error": None})
def test_the_reason_is_the_rule_applied_key_by_key_whether_the_key_sets_are_remembered_or_not(
    data: dict[str, Any], attributes: dict[str, Any]
) -> None:
    expected = reason_by_its_rule(data, attributes)
    assert _reason(data, attributes) == expected
    assert _reason(data, attributes) == expected  # the second time from the remembered key sets
