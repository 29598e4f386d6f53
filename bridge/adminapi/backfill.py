"""The audit backfill: events IDaaS never delivered, reconstructed from its audit log and published.

`POST /api/web/v2/reports/auditeventspaged/siem` lists audit events oldest first in a time window, page by
page (cursor). Each record the mapping trusts (bridge/adminapi/audit.py) becomes a webhook-shaped delivery,
is normalized and routed as a delivery is, marked (headers `idaas-source: audit-backfill` and
`idaas-audit-id`), and published through the bridge's producer (acks=all), unless an event with its
fingerprint (bridge/events/fingerprint.py) is already in Kafka: delivered live, or published by an earlier
backfill of the window.

Crash safety: the checkpoint (where the next page starts) is written, fsync'd, only after Kafka confirmed
every record of a page, and removed once the window is done. A run of the same window resumes from it;
records published after the checkpoint but before a crash are found again by their fingerprints and
counted as duplicates, so a crash mid-window neither skips the rest of the window nor publishes an event
twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
from confluent_kafka import Consumer, TopicPartition

from bridge.adminapi.audit import (
    AUDIT_ID_HEADER,
    BACKFILL_SOURCE,
    MAPPING,
    SOURCE_HEADER,
    audit_label,
    reconstruct,
    webhook_type,
)
from bridge.adminapi.client import AdminApiClient, parse_time
from bridge.config import Settings
from bridge.events.catalog import BY_NAME
from bridge.events.envelope import parse_envelope
from bridge.events.fingerprint import FINGERPRINT_HEADER, utc_second
from bridge.events.normalize import normalize
from bridge.publish.kafka import KafkaPublisher, client_config, new_client
from bridge.publish.spool import replace_durably
from bridge.routing import OutboundRecord, Router

log = logging.getLogger(__name__)

PAGE_LIMIT: Final = 100
#: Records already in Kafka are read from this long before the window (a delivery's record is stamped
#: with its event time, which may lie a little outside the audit window).
FINGERPRINT_MARGIN: Final = timedelta(minutes=5)
#: The manual command's checkpoint; an automatic backfill has one per webhook (bridge/adminapi/recovery.py).
CHECKPOINT_FILE: Final = "backfill-checkpoint.json"
KAFKA_TIMEOUT_SECONDS: Final = 10.0
#: Every result a record of the audit log can have in a backfill.
RESULTS: Final = ("published", "duplicate", "unmapped", "unsubscribed")


@dataclass
class BackfillReport:
    """Filled as the run goes, so a run that fails still tells what it did. A record counts as published
    once Kafka confirmed it; `unsubscribed`: a type the webhook does not subscribe to (IDaaS would not
    have sent it)."""

    #: (webhook type, or the audit label of an unmapped record), result -> count
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    pages: int = 0

    def add(self, kind: str, result: str) -> None:
        self.counts[(kind, result)] += 1

    def rows(self) -> list[tuple[str, int, int, int]]:
        kinds = sorted({kind for kind, _ in self.counts})
        return [
            (
                kind,
                self.counts[(kind, "published")],
                self.counts[(kind, "duplicate")],
                self.counts[(kind, "unmapped")],
            )
            for kind in kinds
        ]


@dataclass(frozen=True)
class Checkpoint:
    """Where a window's next page starts: at `next_start` (inclusive), skipping the audit ids already done
    at exactly that time."""

    window: tuple[str, str]
    next_start: str
    done_at_start: tuple[str, ...] = ()


class CheckpointFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, window: tuple[str, str]) -> Checkpoint:
        try:
            saved = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return Checkpoint(window, window[0])
        if tuple(saved["window"]) != window:
            return Checkpoint(window, window[0])
        return Checkpoint(window, saved["next_start"], tuple(saved["done_at_start"]))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def save(self, checkpoint: Checkpoint) -> None:
        """Atomically and durably: a crash leaves the old checkpoint or the new one."""
        document = {
            "window": checkpoint.window,
            "next_start": checkpoint.next_start,
            "done_at_start": checkpoint.done_at_start,
        }
        replace_durably(self.path, orjson.dumps(document))


def fingerprints_in_kafka(settings: Settings, topics: Iterable[str], since: datetime) -> set[bytes]:
    """The fingerprints of the records in `topics` stamped at `since` or later, up to their end now."""
    consumer = new_client(
        Consumer,
        {**client_config(settings.kafka), "group.id": "idaas-bridge-backfill", "enable.auto.commit": False},
        settings.kafka,
    )
    found: set[bytes] = set()
    try:
        wanted: list[TopicPartition] = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT_SECONDS).topics[topic]
            wanted += [
                TopicPartition(topic, number, int(since.timestamp() * 1000)) for number in metadata.partitions
            ]
        starts = consumer.offsets_for_times(wanted, timeout=KAFKA_TIMEOUT_SECONDS)
        ends = {
            (p.topic, p.partition): consumer.get_watermark_offsets(p, timeout=KAFKA_TIMEOUT_SECONDS)[1]
            for p in wanted
        }
        left = {
            (p.topic, p.partition): ends[(p.topic, p.partition)] - p.offset
            for p in starts
            if p.offset >= 0 and ends[(p.topic, p.partition)] > p.offset
        }
        consumer.assign([p for p in starts if (p.topic, p.partition) in left])
        while any(count > 0 for count in left.values()):
            message = consumer.poll(KAFKA_TIMEOUT_SECONDS)
            if message is None:
                raise TimeoutError(
                    f"Kafka sent nothing for {KAFKA_TIMEOUT_SECONDS:g} s while reading {sorted(left)}"
                )
            if message.error() is not None:
                continue
            place = (str(message.topic()), int(message.partition() or 0))
            if (message.offset() or 0) < ends[place]:
                left[place] -= 1
            headers: list[tuple[str, bytes | None]] = list(message.headers() or [])  # type: ignore[arg-type]
            found.update(value for name, value in headers if name == FINGERPRINT_HEADER and value)
    finally:
        consumer.close()
    return found


class Backfill:
    """One window of the audit log, published as `webhook`'s events (default: the first configured one),
    only of `types` (default: every mapped type), checkpointed in the spool directory's `checkpoint`."""

    def __init__(
        self,
        settings: Settings,
        client: AdminApiClient,
        publisher: KafkaPublisher | None,
        page_limit: int = PAGE_LIMIT,
        webhook: str | None = None,
        types: Iterable[str] | None = None,
        checkpoint: str = CHECKPOINT_FILE,
    ) -> None:
        self._settings = settings
        self._client = client
        self._publisher = publisher
        self._router = Router(settings.kafka)
        self._page_limit = page_limit
        self._webhook = webhook or settings.webhooks[0].name
        self._types = None if types is None else frozenset(types)
        self._audit_topic = settings.admin_api.audit_topic
        self.checkpoints = CheckpointFile(Path(settings.spool.path) / checkpoint)

    def topics(self) -> list[str]:
        """The topics the mapped types are published to (where their fingerprints are looked for)."""
        keys = {BY_NAME[kind].topic for kind in MAPPING.values()}
        return sorted(self._settings.kafka.topics[key].name for key in keys)

    async def run(
        self, start: datetime, end: datetime, dry_run: bool = False, report: BackfillReport | None = None
    ) -> BackfillReport:
        """Backfill [start, min(end, now - admin_api.backfill_audit_lag_seconds)] into `report` (a new one by
        default); raises AdminApiError/PublishError/TimeoutError with the checkpoint at the last page Kafka
        confirmed. Blocking work (Kafka's fingerprints, the checkpoint's fsync) runs in threads."""
        lag = timedelta(seconds=self._settings.admin_api.backfill_audit_lag_seconds)
        end = min(end, datetime.now(UTC) - lag)
        window = (utc_second(start), utc_second(end))
        checkpoint = await asyncio.to_thread(self.checkpoints.load, window)
        seen = await asyncio.to_thread(
            fingerprints_in_kafka, self._settings, self.topics(), start - FINGERPRINT_MARGIN
        )
        report = BackfillReport() if report is None else report
        search: dict[str, Any] = {
            "limit": self._page_limit,
            "searchByAttributes": [
                {"name": "startTime", "operator": "GREATER_THAN_OR_EQUAL", "value": checkpoint.next_start},
                {"name": "endTime", "operator": "LESS_THAN_OR_EQUAL", "value": window[1]},
            ],
        }
        skip = set(checkpoint.done_at_start)
        while True:
            page = await self._client.audit_events_page(search)
            report.pages += 1
            results = [audit for audit in page["results"] if audit.get("id") not in skip]
            records = self._records(results, seen, report)
            if dry_run:
                report.counts.update((kind, "published") for kind, _ in records)
            elif results:
                await self._publish([record for _, record in records] + self._raw(results))
                report.counts.update((kind, "published") for kind, _ in records)
                checkpoint = self._advance(checkpoint, results)
                await asyncio.to_thread(self.checkpoints.save, checkpoint)
                skip = set(checkpoint.done_at_start)
            cursor = (page.get("paging") or {}).get("nextCursor")
            if not cursor:
                if not dry_run:  # done: a later run of the window reads it all again (and finds duplicates)
                    await asyncio.to_thread(self.checkpoints.clear)
                return report
            search = {"cursor": cursor}

    async def _publish(self, records: list[OutboundRecord]) -> None:
        """Through the bridge's producer (acks=all); returns once Kafka confirmed every record."""
        assert self._publisher is not None
        await asyncio.gather(
            *(self._publisher.produce(r.topic, r.key, r.value, r.headers, r.timestamp_ms) for r in records)
        )

    def _raw(self, results: list[dict[str, Any]]) -> list[OutboundRecord]:
        """The page's audit records as they came, for admin_api.audit_topic (none when it is empty), keyed by
        audit id: a page published again after a crash repeats records under the same key."""
        if not self._audit_topic:
            return []
        headers = [(SOURCE_HEADER, BACKFILL_SOURCE.encode())]
        return [
            OutboundRecord(
                topic=self._audit_topic,
                key=str(audit.get("id", "")).encode(),
                value=orjson.dumps(audit),
                headers=[*headers, (AUDIT_ID_HEADER, str(audit.get("id", "")).encode())],
                timestamp_ms=int(parse_time(str(audit["eventTime"])).timestamp() * 1000),
            )
            for audit in results
        ]

    def _records(
        self, results: list[dict[str, Any]], seen: set[bytes], report: BackfillReport
    ) -> list[tuple[str, OutboundRecord]]:
        """(type, record) of each audit record to publish; the others are counted in `report` here."""
        records = []
        received = datetime.now(UTC)
        for audit in results:
            kind = webhook_type(audit)
            if kind is None:
                report.add(audit_label(audit), "unmapped")
                continue
            if self._types is not None and kind not in self._types:
                report.add(kind, "unsubscribed")
                continue
            event = normalize(parse_envelope(reconstruct(audit, kind)), self._webhook, received)
            record = self._router.route(event)
            mark = dict(record.headers)[FINGERPRINT_HEADER]
            if mark in seen:
                report.add(kind, "duplicate")
                continue
            seen.add(mark)
            headers = [
                *record.headers,
                (SOURCE_HEADER, BACKFILL_SOURCE.encode()),
                (AUDIT_ID_HEADER, str(audit["id"]).encode()),
            ]
            records.append((kind, replace(record, headers=headers)))
        return records

    @staticmethod
    def _advance(checkpoint: Checkpoint, results: list[dict[str, Any]]) -> Checkpoint:
        """After a durable page: start at its last event time, skipping the ids done at that time."""
        last = max(parse_time(str(audit["eventTime"])) for audit in results)
        done = [str(audit["id"]) for audit in results if parse_time(str(audit["eventTime"])) == last]
        if utc_second(last) == checkpoint.next_start:
            done += checkpoint.done_at_start
        return replace(checkpoint, next_start=utc_second(last), done_at_start=tuple(sorted(set(done))))
