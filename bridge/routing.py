"""Event → Kafka record: topic by category, value in the topic's format, key and headers per DESIGN.md.

The formats are resolved once at start-up from config; per request this is a dict lookup and one encode.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, NamedTuple

import orjson

from bridge.config import MAX_REASON_BYTES, KafkaSettings
from bridge.errors import ReasonedError
from bridge.events.fingerprint import FINGERPRINT_HEADER, fingerprint
from bridge.events.model import Event
from bridge.formats import get_format
from bridge.formats.base import EventFormat, Header, no_extra_headers, rfc3339

DEADLETTER_SCHEMA: Final = "idaas.deadletter/1"
JSON: Final = b"application/json"
#: Kafka 4 brokers reject records stamped more than `log.message.timestamp.after.max.ms` (1 h by default)
#: ahead of their clock; a 503 for that would repeat until auto-disable. Beyond this skew the record is
#: stamped with the receive time instead (the event time is still in the value).
MAX_FUTURE_SKEW: Final = timedelta(minutes=15)


@dataclass(init=False)
class OutboundRecord:
    """Everything one Kafka produce() needs; also what the spool stores.

    Immutable (a copy with other headers is `dataclasses.replace`): a dataclass with a hand-written
    __init__ and Final fields, native when compiled (see `bridge.events.model`)."""

    topic: Final[str]
    key: Final[bytes]
    value: Final[bytes]
    headers: Final[list[Header]]
    timestamp_ms: Final[int]

    def __init__(
        self, topic: str, key: bytes, value: bytes, headers: list[Header], timestamp_ms: int
    ) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp_ms = timestamp_ms


class RecordTooLarge(ReasonedError):
    """The encoded event would exceed kafka.max_record_bytes; the delivery becomes a dead letter."""


def record_bytes(record: OutboundRecord) -> int:
    """The record's size as the producer counts it against its limit: value, key and headers."""
    return (
        len(record.value) + len(record.key) + sum([len(name) + len(value) for name, value in record.headers])
    )


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def record_time(event: Event) -> datetime:
    """The Kafka record timestamp: the event time, unless it lies implausibly far in the future."""
    if event.occurred_at - event.received_at > MAX_FUTURE_SKEW:
        return event.received_at
    return event.occurred_at


class _Route(NamedTuple):
    """A topic key's destination, resolved at start-up with the headers that depend only on its format."""

    topic: str
    event_format: EventFormat
    content_type: Header
    schema: Header


class Router:
    def __init__(self, kafka: KafkaSettings) -> None:
        self._routes: dict[str, _Route] = {}
        for key, topic in kafka.topics.items():
            event_format = get_format(topic.format)
            self._routes[key] = _Route(
                topic.name,
                event_format,
                ("content-type", event_format.content_type.encode()),
                ("schema", event_format.schema.encode()),
            )
        self.deadletter_topic = kafka.topics["deadletter"].name
        self._max_record_bytes = kafka.max_record_bytes

    def route(self, event: Event) -> OutboundRecord:
        topic, event_format, content_type, schema = self._routes[event.topic]
        headers: list[Header] = [
            ("idaas-event-type", event.type.encode()),
            ("idaas-delivery-id", event.id.encode()),
            content_type,
            schema,
            (FINGERPRINT_HEADER, fingerprint(event)),
        ]
        if event_format.extra_headers is not no_extra_headers:
            headers += event_format.extra_headers(event)
        record = OutboundRecord(
            topic, event.key.encode(), event_format.encode(event), headers, _millis(record_time(event))
        )
        size = record_bytes(record)
        if size > self._max_record_bytes:
            raise RecordTooLarge(
                "record_too_large",
                f"the {event_format.name} record for topic {topic} would be {size} bytes, above "
                f"kafka.max_record_bytes = {self._max_record_bytes}",
            )
        return record

    def deadletter(self, raw: bytes, reason: str, webhook: str, received_at: datetime) -> OutboundRecord:
        """A delivery that authenticated but cannot be published as an event, kept whole with the reason.

        The body stays readable text when it is UTF-8 and the record fits; otherwise it is base64, whose
        size start-up checked against kafka.max_record_bytes (config.largest_deadletter_bytes)."""
        fields = {
            "schema": DEADLETTER_SCHEMA,
            "webhook": webhook,
            "reason": reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore"),
            "received_at": rfc3339(received_at),
        }
        headers: list[Header] = [
            ("idaas-webhook", webhook.encode()),
            ("content-type", JSON),
            ("schema", DEADLETTER_SCHEMA.encode()),
        ]

        def deadletter_record(encoding: str, body: str) -> OutboundRecord:
            return OutboundRecord(
                topic=self.deadletter_topic,
                key=webhook.encode(),
                value=orjson.dumps({**fields, "body_encoding": encoding, "body": body}),
                headers=headers,
                timestamp_ms=_millis(received_at),
            )

        try:
            record = deadletter_record("utf-8", raw.decode("utf-8"))
            if record_bytes(record) <= self._max_record_bytes:  # JSON escapes can make text 6 times longer
                return record
        except UnicodeDecodeError:
            pass
        return deadletter_record("base64", base64.b64encode(raw).decode())
