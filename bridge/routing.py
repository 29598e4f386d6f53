"""Event → Kafka record: topic by category, value in the topic's format, key and headers per DESIGN.md.

The formats are resolved once at start-up from config; per request this is a dict lookup and one encode.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import orjson

from bridge.config import TopicSettings
from bridge.events.model import Event
from bridge.formats import get_format
from bridge.formats.base import EventFormat, Header, rfc3339

DEADLETTER_SCHEMA: Final = "idaas.deadletter/1"
JSON: Final = b"application/json"
#: Kafka 4 brokers reject records stamped more than `log.message.timestamp.after.max.ms` (1 h by default)
#: ahead of their clock; a 503 for that would repeat until auto-disable. Beyond this skew the record is
#: stamped with the receive time instead (the event time is still in the value).
MAX_FUTURE_SKEW: Final = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """Everything one Kafka produce() needs; also what the spool stores."""

    topic: str
    key: bytes
    value: bytes
    headers: list[Header]
    timestamp_ms: int


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def record_time(event: Event) -> datetime:
    """The Kafka record timestamp: the event time, unless it lies implausibly far in the future."""
    if event.occurred_at - event.received_at > MAX_FUTURE_SKEW:
        return event.received_at
    return event.occurred_at


class Router:
    def __init__(self, topics: dict[str, TopicSettings]) -> None:
        self._routes: dict[str, tuple[str, EventFormat]] = {
            key: (topic.name, get_format(topic.format)) for key, topic in topics.items()
        }
        self.deadletter_topic = topics["deadletter"].name

    def route(self, event: Event) -> OutboundRecord:
        topic, event_format = self._routes[event.topic]
        headers: list[Header] = [
            ("idaas-event-type", event.type.encode()),
            ("idaas-delivery-id", event.id.encode()),
            ("content-type", event_format.content_type.encode()),
            ("schema", event_format.schema.encode()),
        ]
        headers.extend(event_format.extra_headers(event))
        return OutboundRecord(
            topic=topic,
            key=event.key.encode(),
            value=event_format.encode(event),
            headers=headers,
            timestamp_ms=_millis(record_time(event)),
        )

    def deadletter(self, raw: bytes, reason: str, webhook: str, received_at: datetime) -> OutboundRecord:
        """A delivery that authenticated but could not be normalized, kept whole with the reason."""
        try:
            body, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(raw).decode(), "base64"
        value = orjson.dumps(
            {
                "schema": DEADLETTER_SCHEMA,
                "webhook": webhook,
                "reason": reason,
                "received_at": rfc3339(received_at),
                "body_encoding": encoding,
                "body": body,
            }
        )
        return OutboundRecord(
            topic=self.deadletter_topic,
            key=webhook.encode(),
            value=value,
            headers=[
                ("idaas-webhook", webhook.encode()),
                ("content-type", JSON),
                ("schema", DEADLETTER_SCHEMA.encode()),
            ],
            timestamp_ms=_millis(received_at),
        )
