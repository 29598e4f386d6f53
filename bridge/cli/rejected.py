"""`idaas-bridge rejected [--replay]`: records Kafka refused for good, kept beside the spool."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Final

from bridge.cli.command import Command
from bridge.config import Settings
from bridge.publish.delivery import REPORT_MARGIN_SECONDS
from bridge.publish.kafka import KafkaPublisher, PublishError
from bridge.publish.rejected import RejectedRecord, RejectedRecords

#: How long a replay waits for Kafka to take one rejected record.
REPLAY_TIMEOUT_SECONDS: Final = 30.0


def rejected(settings: Settings, replay: bool) -> int:
    """List the records Kafka refused for good, or publish them again (one at a time: the broker refuses
    a whole batch for one record it will not take) and keep only those it still refuses."""
    store = RejectedRecords(Path(settings.spool.path))
    if not replay:
        kept = store.read()
        for entry in kept:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.rejected_at))
            print(f"{when} {entry.record.topic} {len(entry.record.value)} bytes: {entry.detail}")
        print(f"{len(kept)} rejected record(s) in {store.path}")
        return 0

    def publish(records: list[RejectedRecord]) -> list[RejectedRecord]:
        return asyncio.run(republish(settings, records))

    published, refused = store.replay(publish)
    print(f"published {published} rejected record(s); {refused} still in {store.path}")
    return 1 if refused else 0


async def republish(settings: Settings, records: list[RejectedRecord]) -> list[RejectedRecord]:
    """Publish `records` one by one through the bridge's own producer path (KafkaPublisher: durability
    settings, and the timestamp floor that keeps a record rejected days ago from being deleted by
    retention at once); return those Kafka still refuses."""
    publisher = KafkaPublisher(settings.kafka, REPLAY_TIMEOUT_SECONDS, "replay")
    publisher.start()
    refused = []
    try:
        for entry in records:
            record = entry.record
            try:
                await publisher.publish(
                    record.topic,
                    record.key,
                    record.value,
                    record.headers,
                    record.timestamp_ms,
                    REPLAY_TIMEOUT_SECONDS + REPORT_MARGIN_SECONDS,
                )
            except PublishError as exc:
                refused.append(entry)
                print(f"still refused: {record.topic}: {exc}")
    finally:
        await asyncio.to_thread(publisher.close, REPLAY_TIMEOUT_SECONDS)
    return refused


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--replay", action="store_true", help="publish them again; keep only those still refused"
    )


COMMAND = Command(
    name="rejected",
    summary="list the records Kafka refused for good, kept in the spool directory, or replay them",
    description="List the records Kafka refused for good (rejected.jsonl in the spool directory).",
    add_arguments=add_arguments,
    run=lambda settings, args: rejected(settings, args.replay),
)
