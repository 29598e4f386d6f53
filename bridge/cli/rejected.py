"""`idaas-bridge rejected [--replay]`: records Kafka refused for good, kept beside the spool."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Final

from bridge.cli.command import Command
from bridge.config import Settings
from bridge.publish.kafka import producer_config
from bridge.publish.rejected import RejectedRecord, RejectedRecords
from bridge.routing import OutboundRecord

#: How long a replay waits for Kafka to take one rejected record.
REPLAY_TIMEOUT_SECONDS: Final = 30.0


def rejected(settings: Settings, replay: bool) -> int:
    """List the records Kafka refused for good, or publish them again (one at a time: the broker refuses
    a whole batch for one record it will not take) and keep only those it still refuses."""
    from confluent_kafka import KafkaError, KafkaException, Producer

    store = RejectedRecords(Path(settings.spool.path))
    if not replay:
        kept = store.read()
        for entry in kept:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.rejected_at))
            print(f"{when} {entry.record.topic} {len(entry.record.value)} bytes: {entry.detail}")
        print(f"{len(kept)} rejected record(s) in {store.path}")
        return 0
    producer = Producer(producer_config(settings.kafka, REPLAY_TIMEOUT_SECONDS))

    def refusal(record: OutboundRecord) -> str | None:
        """None once Kafka acknowledged the record, else why it did not."""
        outcome: list[KafkaError | None] = []
        try:
            producer.produce(
                record.topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                timestamp=record.timestamp_ms,
                on_delivery=lambda error, _message: outcome.append(error),
            )
            producer.flush(REPLAY_TIMEOUT_SECONDS + 5)
        except KafkaException as exc:
            return str(exc)
        if not outcome:
            return "no answer from Kafka"
        return None if outcome[0] is None else str(outcome[0])

    def publish(records: list[RejectedRecord]) -> list[RejectedRecord]:
        refused = []
        for entry in records:
            why = refusal(entry.record)
            if why is not None:
                refused.append(entry)
                print(f"still refused: {entry.record.topic}: {why}")
        return refused

    published, refused = store.replay(publish)
    print(f"published {published} rejected record(s); {refused} still in {store.path}")
    return 1 if refused else 0


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
