"""Spool → Kafka: publishes spooled records in order once the broker is back.

A record leaves the spool only after Kafka acknowledged it (and every record before it in its segment), so
a crash at any point loses nothing: the next start reads the spool back and publishes again (at least once).

A record Kafka refuses for good (RECORD_REJECTED_CODES) would stop the drain forever, so it is produced
again on its own: the broker fails a whole batch for one oversized record, so only alone is the verdict
about this record. Refused alone, it moves to the rejected file (rejected.py) and the drain goes on. A
record for a topic no longer in `kafka.topics` (the configuration changed while it waited) goes there too,
without being produced.

Only a confirmed prefix of a batch leaves the spool, but the records behind the first unsettled one may be
in Kafka already: librdkafka sends a batch in several produce requests (with linger.ms 0, whatever was
queued when the previous request left), so the records after a refused one are often acknowledged. Their
attempts are kept, and the next batch produces again only the records whose attempt failed (one still
running after `ack_wait` is waited for again). So without a restart a record is in Kafka twice only when
librdkafka reported a failure for a produce request the broker had written (at least once, like the
receiver's ack timeout); a restart republishes what the spool had not confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from typing import Final

from bridge import metrics
from bridge.errors import ReasonedError
from bridge.publish.kafka import Delivered, KafkaPublisher, PublishError
from bridge.publish.rejected import RejectedRecords
from bridge.publish.spool import Spool, SpooledRecord
from bridge.routing import OutboundRecord

log = logging.getLogger(__name__)

BATCH_RECORDS: Final = 500
MIN_BACKOFF_SECONDS: Final = 0.2
MAX_BACKOFF_SECONDS: Final = 5.0
#: At shutdown, with Kafka reported down, how long the drain may go without emptying a record before it is
#: given up: the drainer tries again at least every MAX_BACKOFF_SECONDS, and the reported state lags the
#: broker (an "all brokers down" is cleared by the next statistics, kafka.statistics_interval_seconds on).
DRAIN_STALL_SECONDS: Final = MAX_BACKOFF_SECONDS + 1.0
#: While idle, refresh the oldest-record age gauge this often.
GAUGE_REFRESH_SECONDS: Final = 5.0


class Drainer:
    def __init__(
        self,
        spool: Spool,
        publisher: KafkaPublisher,
        rejected: RejectedRecords,
        topics: Collection[str],
        ack_wait: float,
    ) -> None:
        """`ack_wait`: how long to wait for a batch's acknowledgements (longer than the publisher's own
        message timeout, so librdkafka normally reports first); what is not settled by then stays spooled."""
        self._spool = spool
        self._publisher = publisher
        self._rejected = rejected
        #: The configured topics: the only ones a spooled record may be produced to.
        self._topics = frozenset(topics)
        self._ack_wait = ack_wait
        self._task: asyncio.Task[None] | None = None
        self._backoff = MIN_BACKOFF_SECONDS
        #: The next batch is one record: the one the broker just refused together with its batch.
        self._isolate_next = False
        #: When a batch settled only a prefix: the attempts of the records after it, in order from the
        #: segment's confirmed prefix (`_attempts_segment`). One that succeeded or still runs is reused.
        self._attempts: list[asyncio.Future[Delivered]] = []
        self._attempts_segment = -1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="spool-drainer")

    async def stop(self, drain_within: float = 0.0, kafka_up: Callable[[], bool] = lambda: False) -> None:
        """Stop draining. First, for up to `drain_within` seconds, let the drain empty the spool (a pod's
        spool on an emptyDir volume is deleted with the pod): while `kafka_up()` (the bridge's cached view
        of Kafka) holds, or the spool shrank within the last DRAIN_STALL_SECONDS. The cached view alone
        said "down" for a broker back from a blip (CI: SIGTERM 5 ms after the client's "all brokers down",
        20,000 records left while Kafka answered again)."""
        if self._task is None:
            return
        deadline = time.monotonic() + drain_within
        pending = self._spool.pending_records
        moved_at = time.monotonic()
        while pending and time.monotonic() < deadline and not self._task.done():
            if not kafka_up() and time.monotonic() - moved_at >= DRAIN_STALL_SECONDS:
                break
            await asyncio.sleep(0.1)
            left = self._spool.pending_records
            if left < pending:
                moved_at = time.monotonic()
            pending = left
        if self._spool.pending_records:
            log.warning(
                "stopping with records still in the spool; the next start drains them",
                extra={"spooled_records": self._spool.pending_records},
            )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        """Drain forever. An unexpected error (a disk error reading the spool) pauses the drain, never
        ends it: a dead drainer would leave every later record in the spool without a word."""
        while True:
            try:
                progressed = await self._drain_step()
            except Exception:
                log.exception("spool drain failed; retrying")
                progressed = False
            if progressed:
                self._backoff = MIN_BACKOFF_SECONDS
            else:
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)

    async def _drain_step(self) -> bool:
        """Publish the next batch, or wait for records; False when the drain should back off."""
        segments = self._spool.drainable_segments()
        if not segments:
            self._spool.appended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._spool.appended.wait(), GAUGE_REFRESH_SECONDS)
            self._spool.publish_gauges()
            await asyncio.to_thread(self._rejected.publish_gauge)
            return True
        size = 1 if self._isolate_next else BATCH_RECORDS
        batch = await self._spool.next_batch(segments[0], size)
        if not batch:  # unreadable: the spool moved the segment's rest aside (and the attempts' places)
            self._attempts = []
            return True
        unknown = next((i for i, item in enumerate(batch) if item.record.topic not in self._topics), None)
        if unknown == 0:
            return await self._set_aside(batch[0])
        return await self._publish(batch[:unknown])

    async def _set_aside(self, item: SpooledRecord) -> bool:
        """A record for a topic no longer configured: to the rejected file, never to Kafka."""
        topic = item.record.topic
        refusal = ReasonedError(
            "topic_not_configured",
            f"topic {topic} is not in kafka.topics any more; add it back and replay, or delete the record",
        )
        if not await self._reject(item, refusal):
            return False
        await self._spool.confirm([item], None)
        self._attempts = self._attempts_from(item.segment)[1:]  # its own attempt, if any, failed
        return True

    async def _reject(self, item: SpooledRecord, error: ReasonedError) -> bool:
        """Move a record that cannot go to Kafka to the rejected file; False (kept in the spool) when that
        file cannot be written."""
        where = {"topic": item.record.topic, "error": str(error), "file": str(self._rejected.path)}
        try:
            await asyncio.to_thread(self._rejected.keep, item.record, error)
        except OSError as exc:
            log.error(
                "a spooled record cannot go to kafka and the rejected file failed: kept in the spool",
                extra={**where, "io_error": str(exc)},
            )
            return False
        log.error("a spooled record cannot go to kafka; moved to the rejected file", extra=where)
        return True

    async def _publish(self, batch: list[SpooledRecord]) -> bool:
        """Publish a batch; confirm its longest settled prefix (acknowledged, or refused for good and kept in
        the rejected file). True when the drain can go on at once: all settled, or a record to isolate."""
        attempts = self._attempts_from(batch[0].segment)
        futures = [self._attempt(attempts, index, item.record) for index, item in enumerate(batch)]
        await asyncio.wait(futures, timeout=self._ack_wait)
        self._isolate_next = False
        settled = 0
        for item, future in zip(batch, futures, strict=True):
            if not future.done():
                log.warning(
                    "spool drain paused: no answer from Kafka in time",
                    extra={"seconds": self._ack_wait, "topic": item.record.topic},
                )
                break
            result = future.exception() or future.result()
            if isinstance(result, PublishError) and result.record_rejected and len(batch) == 1:
                if not await self._reject(item, result):
                    break
            elif isinstance(result, BaseException):
                self._isolate_next = isinstance(result, PublishError) and result.record_rejected
                log.warning("spool drain paused", extra={"error": str(result)})
                break
            else:
                metrics.SPOOL_DRAINED.labels(topic=item.record.topic).inc()
            settled += 1
        # What the next batch begins with: this one's unsettled records, then attempts beyond this batch.
        self._attempts = futures[settled:] + attempts[len(batch) :]
        next_spooled_at = batch[settled].spooled_at if settled < len(batch) else None
        await self._spool.confirm(batch[:settled], next_spooled_at)
        return settled == len(batch) or self._isolate_next

    def _attempts_from(self, segment: int) -> list[asyncio.Future[Delivered]]:
        """The attempts kept for the records from `segment`'s confirmed prefix on (none for another one)."""
        if segment != self._attempts_segment:
            self._attempts, self._attempts_segment = [], segment
        return self._attempts

    def _attempt(
        self, attempts: list[asyncio.Future[Delivered]], index: int, record: OutboundRecord
    ) -> asyncio.Future[Delivered]:
        """The record at `index` from its segment's confirmed prefix: its previous attempt when that
        succeeded or still runs (producing it again would publish it twice), else a new one."""
        if index < len(attempts):
            previous = attempts[index]
            if not previous.done() or (not previous.cancelled() and previous.exception() is None):
                return previous
        return self._publisher.produce(
            record.topic, record.key, record.value, record.headers, record.timestamp_ms
        )
