"""Spool → Kafka: publishes spooled records in order once the broker is back.

A record leaves the spool only after Kafka acknowledged it (and every record before it in its segment), so
a crash at any point loses nothing: the next start reads the spool back and publishes again (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from bridge import metrics
from bridge.publish.kafka import KafkaPublisher
from bridge.publish.spool import Spool, SpooledRecord

log = logging.getLogger(__name__)

BATCH_RECORDS: Final = 500
MIN_BACKOFF_SECONDS: Final = 0.2
MAX_BACKOFF_SECONDS: Final = 5.0
#: While idle, refresh the oldest-record age gauge this often.
GAUGE_REFRESH_SECONDS: Final = 5.0


class Drainer:
    def __init__(self, spool: Spool, publisher: KafkaPublisher) -> None:
        self._spool = spool
        self._publisher = publisher
        self._task: asyncio.Task[None] | None = None
        self._backoff = MIN_BACKOFF_SECONDS

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="spool-drainer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            segments = self._spool.drainable_segments()
            if not segments:
                self._spool.appended.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._spool.appended.wait(), GAUGE_REFRESH_SECONDS)
                self._spool.publish_gauges()
                continue
            batch = await asyncio.to_thread(self._spool.next_batch, segments[0], BATCH_RECORDS)
            if await self._publish(batch):
                self._backoff = MIN_BACKOFF_SECONDS
            else:
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)

    async def _publish(self, batch: list[SpooledRecord]) -> bool:
        """Publish a batch; confirm its longest acknowledged prefix. True when all of it went through."""
        futures = [
            self._publisher.produce(
                item.record.topic,
                item.record.key,
                item.record.value,
                item.record.headers,
                item.record.timestamp_ms,
            )
            for item in batch
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        delivered = 0
        for result in results:
            if isinstance(result, BaseException):
                log.warning("spool drain paused", extra={"error": str(result)})
                break
            delivered += 1
        confirmed = batch[:delivered]
        for item in confirmed:
            metrics.SPOOL_DRAINED.labels(topic=item.record.topic).inc()
        next_spooled_at = batch[delivered].spooled_at if delivered < len(batch) else None
        self._spool.confirm(confirmed, next_spooled_at)
        return delivered == len(batch)
