"""Record size limits: an event too large for Kafka becomes a dead letter that always fits."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import orjson
import pytest

from bridge.config import KafkaSettings, largest_deadletter_bytes
from bridge.events.envelope import parse_envelope
from bridge.events.normalize import normalize
from bridge.events.samples import sample_deliveries
from bridge.publish.kafka import MAX_RECORD_AGE_MS, produce_timestamp
from bridge.routing import RecordTooLarge, Router, record_bytes

RECEIVED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
#: The largest body kafka.max_record_bytes = 1,000,000 admits (the config check's own boundary).
MAX_RECORD = 1_000_000
MAX_BODY = 743_856


def router(max_record_bytes: int = MAX_RECORD) -> Router:
    return Router(KafkaSettings(max_record_bytes=max_record_bytes))


def user_event(padding: int) -> bytes:
    sample = next(s for s in sample_deliveries() if s["type"] == "user.updated")
    data = dict(sample["data"])  # type: ignore[call-overload]
    data["note"] = "n" * padding
    return orjson.dumps({**sample, "data": data})


def test_record_bytes_counts_value_key_and_headers() -> None:
    body = user_event(10)
    record = router().route(normalize(parse_envelope(body), "prod", RECEIVED))
    headers = sum(len(name) + len(value) for name, value in record.headers)
    assert record_bytes(record) == len(record.value) + len(record.key) + headers
    assert headers > 0 and record.key


def test_an_event_whose_record_exceeds_the_limit_is_refused_with_its_size() -> None:
    small = normalize(parse_envelope(user_event(100)), "prod", RECEIVED)
    limit = record_bytes(router().route(small)) + 50
    big = normalize(parse_envelope(user_event(200)), "prod", RECEIVED)
    limited = Router(KafkaSettings(max_record_bytes=limit))
    assert record_bytes(limited.route(small)) == limit - 50
    with pytest.raises(RecordTooLarge) as raised:
        limited.route(big)
    assert raised.value.reason == "record_too_large"
    size = record_bytes(router().route(big))
    assert str(raised.value) == (
        f"the native record for topic idaas.user would be {size} bytes, "
        f"above kafka.max_record_bytes = {limit}"
    )


def test_a_utf8_body_that_fits_stays_readable_in_the_dead_letter() -> None:
    record = router().deadletter(b'{"id": "\xc3\xa9"}', "record_too_large: ...", "prod", RECEIVED)
    value = orjson.loads(record.value)
    assert value["body_encoding"] == "utf-8" and value["body"] == '{"id": "é"}'
    assert value["reason"] == "record_too_large: ..." and record.topic == "idaas.deadletter"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x01" * MAX_BODY, id="control characters JSON escapes six-fold"),
        pytest.param(b'"' * MAX_BODY, id="quotes JSON escapes two-fold"),
        pytest.param(os.urandom(MAX_BODY), id="binary"),
        pytest.param("🔐".encode() * (MAX_BODY // 4), id="four-byte UTF-8"),
    ],
)
def test_the_dead_letter_of_the_largest_admitted_body_always_fits(body: bytes) -> None:
    assert len(body) <= MAX_BODY and largest_deadletter_bytes(MAX_BODY) <= MAX_RECORD
    reason = '\x00"é' * 5000  # longer than any real reason, and every byte of it needs escaping
    record = router().deadletter(body, reason, "w" * 63, RECEIVED)
    assert record_bytes(record) <= MAX_RECORD
    value = orjson.loads(record.value)
    kept = value["body"].encode() if value["body_encoding"] == "utf-8" else base64.b64decode(value["body"])
    assert kept == body
    assert reason.startswith(value["reason"]) and len(value["reason"].encode()) <= 1024


def test_a_record_is_never_produced_with_a_timestamp_older_than_the_maximum_age() -> None:
    now = 1_800_000_000_000
    assert produce_timestamp(now - 1000, now) == now - 1000
    assert produce_timestamp(now - MAX_RECORD_AGE_MS, now) == now - MAX_RECORD_AGE_MS
    assert produce_timestamp(now - 3 * MAX_RECORD_AGE_MS, now) == now - MAX_RECORD_AGE_MS
    assert produce_timestamp(now + 60_000, now) == now + 60_000  # the future is record_time's concern
