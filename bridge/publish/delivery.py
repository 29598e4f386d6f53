"""Making one record durable: the decision between Kafka, the spool and "unavailable".

The receiver only asks `submit(record)` and maps the answer to an HTTP status; what "durable" means
lives here: acknowledged by Kafka (acks=all) within the ack deadline, else fsync'd in the spool.
"""

from __future__ import annotations

import time
from typing import Final, Literal

from bridge.config import AckMode
from bridge.errors import ReasonedError
from bridge.publish.kafka import KafkaPublisher, PublishError
from bridge.publish.spool import Spool, SpoolError
from bridge.routing import OutboundRecord

Durability = Literal["published", "spooled"]
#: How much longer than the ack deadline (`message.timeout.ms`) to wait for a record's report. librdkafka
#: scans for expired messages about once a second, so a timeout is often reported later than this; the
#: margin is kept short so the answer stays well inside IDaaS's 3 s, and a record spooled while librdkafka
#: still holds it may reach Kafka twice (docs/architecture.md, "Two Kafka producers"); it is never lost.
REPORT_MARGIN_SECONDS: Final = 0.25
#: After Kafka missed an ack, go straight to the spool for this long instead of making every request in
#: an outage wait out the full ack deadline; then Kafka is tried again.
KAFKA_BACKOFF_SECONDS: Final = 1.0


class Unavailable(ReasonedError):
    """Nothing durable could be done; the receiver answers 503 so that IDaaS retries."""


class DurableDelivery:
    def __init__(
        self, publisher: KafkaPublisher, spool: Spool, ack_deadline: float, ack_mode: AckMode
    ) -> None:
        self._publisher = publisher
        self._spool = spool
        self._wait = ack_deadline + REPORT_MARGIN_SECONDS
        self._spool_first = ack_mode == "spool_first"
        #: Until when requests go straight to the spool after a missed ack; None when Kafka is not backed
        #: off, so that a delivery reads the clock only during and just after a backoff.
        self._kafka_retry_at: float | None = None

    async def submit(self, record: OutboundRecord) -> Durability:
        retry_at = self._kafka_retry_at
        if retry_at is not None and time.monotonic() >= retry_at:
            self._kafka_retry_at = retry_at = None  # the backoff is over
        if retry_at is None and not self._spool_first:
            try:
                await self._publisher.publish(
                    record.topic, record.key, record.value, record.headers, record.timestamp_ms, self._wait
                )
            except PublishError as exc:
                # A record the broker refused for its own sake says nothing about Kafka's health.
                if not exc.record_rejected:
                    self._kafka_retry_at = time.monotonic() + KAFKA_BACKOFF_SECONDS
            else:
                return "published"
        try:
            await self._spool.append(record)
        except SpoolError as exc:
            raise Unavailable(f"spool_{exc.reason}", str(exc)) from exc
        return "spooled"
