"""Making one record durable: the decision between Kafka, the spool and "unavailable".

The receiver only asks `submit(record)` and maps the answer to an HTTP status; what "durable"
means lives here.
"""

from __future__ import annotations

from typing import Literal

from bridge.publish.kafka import KafkaPublisher, PublishError
from bridge.routing import OutboundRecord

Durability = Literal["published", "spooled"]


class Unavailable(Exception):
    """Nothing durable could be done; the receiver answers 503 so that IDaaS retries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KafkaDelivery:
    """Durable means acknowledged by Kafka (acks=all) within the ack deadline."""

    def __init__(self, publisher: KafkaPublisher, ack_deadline: float) -> None:
        self._publisher = publisher
        self._deadline = ack_deadline

    async def submit(self, record: OutboundRecord) -> Durability:
        try:
            await self._publisher.publish(
                record.topic, record.key, record.value, record.headers, record.timestamp_ms, self._deadline
            )
        except PublishError as exc:
            raise Unavailable(exc.reason) from exc
        return "published"
