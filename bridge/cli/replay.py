"""`idaas-bridge replay deadletters|rejected|spool DIR`: publish again what the bridge set aside.

Everything goes through the bridge's own producer (KafkaPublisher: acks=all, idempotence, the timestamp
floor of bridge/publish/kafka.py), and nothing is given up on disk or in Kafka before Kafka confirmed what
replaced it:

- `deadletters`: each dead letter's raw body is normalized again (after a fix in the bridge or its
  configuration); those that now make an event are published to their topic, those still failing stay in
  the dead-letter topic. Progress is the consumer group REPLAY_GROUP's committed offset, committed only
  past records whose replacement Kafka confirmed, so a dead letter is moved back exactly once however
  often the command runs.
- `rejected`: the spool directory's rejected.jsonl (records Kafka refused for good), one at a time; those
  still refused stay in the file.
- `spool DIR`: a spool directory left by a dead pod, drained by the bridge's own drainer: a segment is
  deleted only once Kafka confirmed every record in it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Final

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from bridge.cli.command import Command
from bridge.cli.display import progress_bar
from bridge.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError
from bridge.cli.kafka_client import ERRORS, quiet
from bridge.config import Settings
from bridge.errors import ReasonedError
from bridge.events.envelope import parse_envelope
from bridge.events.normalize import normalize
from bridge.publish.delivery import REPORT_MARGIN_SECONDS
from bridge.publish.drainer import Drainer
from bridge.publish.kafka import KafkaPublisher, PublishError, client_config, new_client
from bridge.publish.rejected import RejectedRecord, RejectedRecords
from bridge.publish.spool import Spool, unconfirmed_records
from bridge.publish.stranded import stranded_directories, take_over
from bridge.routing import DEADLETTER_SCHEMA, OutboundRecord, Router

#: How long the replay's producer keeps retrying one record before it reports a failure.
REPLAY_TIMEOUT_SECONDS: Final = 30.0
#: The consumer group whose committed offsets say how far the dead letters were replayed.
REPLAY_GROUP: Final = "idaas-bridge-replay"
METADATA_TIMEOUT_SECONDS: Final = 10.0
BATCH_RECORDS: Final = 500
#: A spool replay gives up when the drain made no progress for this long (Kafka unreachable).
STALL_SECONDS: Final = 60.0


@contextmanager
def publisher(settings: Settings) -> Iterator[KafkaPublisher]:
    """The bridge's producer, quiet: a failure is reported by the command, not by librdkafka's log."""
    logging.getLogger("bridge.kafka").setLevel(logging.CRITICAL)
    producer = KafkaPublisher(settings.kafka, REPLAY_TIMEOUT_SECONDS, "replay")
    producer.start()
    try:
        yield producer
    finally:
        producer.close(REPLAY_TIMEOUT_SECONDS)


def _counts(records: list[OutboundRecord]) -> str:
    return ", ".join(
        f"{topic}: {count}" for topic, count in sorted(Counter(r.topic for r in records).items())
    )


# --- dead letters ---------------------------------------------------------------------------------------


def renormalized(value: bytes, router: Router) -> OutboundRecord | ReasonedError:
    """The event record a dead letter's raw body makes now, or why it still cannot make one."""
    try:
        letter = orjson.loads(value)
        if not isinstance(letter, dict) or letter.get("schema") != DEADLETTER_SCHEMA:
            return ReasonedError("not_a_deadletter", f"not an {DEADLETTER_SCHEMA} record")
        body: bytes = (
            base64.b64decode(letter["body"])
            if letter.get("body_encoding") == "base64"
            else str(letter["body"]).encode()
        )
        received_at = datetime.fromisoformat(str(letter["received_at"]).replace("Z", "+00:00"))
        return router.route(normalize(parse_envelope(body), str(letter["webhook"]), received_at))
    except ReasonedError as exc:
        return exc
    except (orjson.JSONDecodeError, KeyError, ValueError) as exc:
        return ReasonedError("unreadable_deadletter", f"dead letter not readable: {exc}")


def _deadletter_consumer(settings: Settings) -> tuple[Consumer, list[TopicPartition], dict[int, int]]:
    """A consumer of REPLAY_GROUP assigned to every dead-letter partition at its committed offset (or the
    oldest record), and each partition's end offset now: the replay stops there."""
    topic = settings.kafka.topics["deadletter"].name
    consumer = new_client(
        Consumer,
        quiet(
            {
                **client_config(settings.kafka),
                "group.id": REPLAY_GROUP,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        ),
        settings.kafka,
    )
    metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_SECONDS).topics.get(topic)
    if metadata is None or metadata.error is not None:
        consumer.close()
        raise CommandError(f"dead-letter topic {topic} does not exist", "check kafka.topics.deadletter.name")
    partitions = [TopicPartition(topic, number) for number in sorted(metadata.partitions)]
    committed = consumer.committed(partitions, timeout=METADATA_TIMEOUT_SECONDS)
    ends: dict[int, int] = {}
    for position in committed:
        low, high = consumer.get_watermark_offsets(position, timeout=METADATA_TIMEOUT_SECONDS)
        if position.offset < low:  # nothing committed yet, or behind what retention kept
            position.offset = low
        ends[position.partition] = high
    consumer.assign(committed)
    return consumer, committed, ends


async def _publish_all(producer: KafkaPublisher, records: list[OutboundRecord], before: int) -> None:
    """Publish a batch and return once Kafka confirmed all of it; raise CommandError otherwise."""
    results = await asyncio.gather(
        *(producer.produce(r.topic, r.key, r.value, r.headers, r.timestamp_ms) for r in records),
        return_exceptions=True,
    )
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        # The batch's offsets are not committed: the next run replays it (at least once, never lost).
        raise CommandError(
            f"Kafka did not take a replayed event ({failures[0]}); {before} published before this batch",
            "run replay again once Kafka is healthy (this batch was not marked as replayed)",
        )


async def replay_deadletters(settings: Settings, dry_run: bool) -> int:
    router = Router(settings.kafka)
    consumer, positions, ends = _deadletter_consumer(settings)
    left = {p.partition: ends[p.partition] - p.offset for p in positions if ends[p.partition] > p.offset}
    total = sum(left.values())
    fixed: list[OutboundRecord] = []
    still: Counter[str] = Counter()
    try:
        with progress_bar("dead letters") as progress, publisher(settings) as producer:
            task = progress.add_task("", total=total)
            last_read = time.monotonic()
            while any(left.values()):
                batch = [m for m in consumer.consume(BATCH_RECORDS, 1.0) if m.error() is None]
                if not batch and time.monotonic() - last_read > STALL_SECONDS:
                    raise CommandError(
                        f"no dead letter could be read for {STALL_SECONDS:g} s; {len(fixed)} replayed so far",
                        "check Kafka (idaas-bridge check-config --connect) and run replay again",
                    )
                records: list[OutboundRecord] = []
                last: dict[int, int] = {}
                for message in batch:
                    last_read = time.monotonic()
                    partition, offset = message.partition(), message.offset()
                    if partition is None or offset is None or offset >= ends[partition]:
                        continue
                    left[partition] = ends[partition] - offset - 1
                    last[partition] = offset
                    outcome = renormalized(message.value() or b"", router)
                    if isinstance(outcome, OutboundRecord):
                        records.append(outcome)
                    else:
                        still[outcome.reason] += 1
                if not dry_run:
                    await _publish_all(producer, records, len(fixed))
                    if last:
                        topic = positions[0].topic
                        done = [
                            TopicPartition(topic, partition, offset + 1) for partition, offset in last.items()
                        ]
                        consumer.commit(offsets=done, asynchronous=False)
                fixed += records
                progress.update(task, completed=total - sum(left.values()))
    finally:
        consumer.close()
    verb = "would publish" if dry_run else "published"
    print(f"{verb} {len(fixed)} event(s) from dead letters ({_counts(fixed) or 'none'})")
    if still:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in still.most_common())
        print(
            f"{sum(still.values())} dead letter(s) still fail and stay in the dead-letter topic ({reasons})"
        )
    return EXIT_FAILED if still else EXIT_OK


# --- rejected records -----------------------------------------------------------------------------------


async def replay_rejected(settings: Settings, dry_run: bool) -> int:
    store = RejectedRecords(Path(settings.spool.path))
    if dry_run:
        kept = store.read()
        topics = _counts([entry.record for entry in kept]) or "none"
        print(f"would publish {len(kept)} rejected record(s) from {store.path} ({topics})")
        return EXIT_OK
    loop = asyncio.get_running_loop()
    with progress_bar("rejected records") as progress, publisher(settings) as producer:
        task = progress.add_task("", total=None)

        def publish(entries: list[RejectedRecord]) -> list[RejectedRecord]:
            """One at a time: the broker refuses a whole batch for one record it will not take."""
            progress.update(task, total=len(entries))
            refused = []
            for entry in entries:
                record = entry.record
                future = asyncio.run_coroutine_threadsafe(
                    producer.publish(
                        record.topic,
                        record.key,
                        record.value,
                        record.headers,
                        record.timestamp_ms,
                        REPLAY_TIMEOUT_SECONDS,
                    ),
                    loop,
                )
                try:
                    future.result()
                except PublishError as exc:
                    refused.append(entry)
                    print(f"still refused: {record.topic}: {exc}")
                progress.advance(task)
            return refused

        published, refused = await asyncio.to_thread(store.replay, publish)
    print(f"published {published} rejected record(s); {refused} still in {store.path}")
    return EXIT_FAILED if refused else EXIT_OK


# --- a dead pod's spool ---------------------------------------------------------------------------------


async def replay_spool(settings: Settings, directory: Path, dry_run: bool) -> int:
    if not directory.is_dir():
        raise CommandError(f"{directory} is not a directory", "give the spool directory the dead pod left")
    # A pod with server.workers above 1 spooled in worker-<i> directories under its spool.path.
    workers = stranded_directories(directory, 1, None)
    waiting = [record for place in (directory, *workers) for record in unconfirmed_records(place)]
    if dry_run or not waiting:
        verb = "would publish" if dry_run else "published"
        print(f"{verb} {len(waiting)} spooled record(s) from {directory} ({_counts(waiting) or 'none'})")
        return EXIT_OK
    await asyncio.to_thread(take_over, directory, 1, None)
    spool = Spool(directory, settings.spool.max_bytes, settings.spool.segment_bytes)
    rejected = RejectedRecords(directory)
    rejected_before = len(rejected.read())
    await spool.open()
    total = spool.pending_records
    try:
        with progress_bar("spooled records") as progress, publisher(settings) as producer:
            task = progress.add_task("", total=total)
            drainer = Drainer(
                spool,
                producer,
                rejected,
                [topic.name for topic in settings.kafka.topics.values()],
                ack_wait=REPLAY_TIMEOUT_SECONDS + REPORT_MARGIN_SECONDS,
            )
            drainer.start()
            last_progress, last_pending = time.monotonic(), spool.pending_records
            while spool.pending_records:
                await asyncio.sleep(0.2)
                pending = spool.pending_records
                progress.update(task, completed=total - pending)
                if pending < last_pending:
                    last_progress, last_pending = time.monotonic(), pending
                elif time.monotonic() - last_progress > STALL_SECONDS:
                    await drainer.stop()
                    raise CommandError(
                        f"Kafka at {settings.kafka.bootstrap_servers} took nothing for {STALL_SECONDS:g} s; "
                        f"{pending} record(s) left in {directory}, none deleted",
                        "check Kafka (idaas-bridge check-config --connect) and run replay again",
                    )
            await drainer.stop()
    finally:
        await spool.close(REPLAY_TIMEOUT_SECONDS)
    refused = len(rejected.read()) - rejected_before
    print(f"published {total - refused} spooled record(s) from {directory} ({_counts(waiting)})")
    if refused:
        print(f"{refused} refused by Kafka for good, kept in {rejected.path} (idaas-bridge replay rejected)")
    return EXIT_FAILED if refused else EXIT_OK


def run(settings: Settings, args: argparse.Namespace) -> int:
    if (args.source == "spool") != (args.directory is not None):
        print("idaas-bridge replay: give a DIRECTORY with `spool`, and only with it", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.source == "deadletters":
            return asyncio.run(replay_deadletters(settings, args.dry_run))
        if args.source == "rejected":
            return asyncio.run(replay_rejected(settings, args.dry_run))
        return asyncio.run(replay_spool(settings, Path(args.directory), args.dry_run))
    except KafkaException as exc:
        raise ERRORS.explain(exc, settings.kafka.bootstrap_servers) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", choices=["deadletters", "rejected", "spool"], help="what to publish again")
    parser.add_argument("directory", nargs="?", help="with `spool`: the spool directory a dead pod left")
    parser.add_argument("--dry-run", action="store_true", help="say what would be published; change nothing")


COMMAND = Command(
    description=(
        "Publish again, through the bridge's own producer, what it set aside: `deadletters` (each raw body "
        "normalized anew; those still failing stay dead letters; each is moved back once, however often "
        "this runs), `rejected` (records Kafka refused for good; those still refused stay), or `spool DIR` "
        "(a spool directory a dead pod left; a segment is deleted only once Kafka confirmed all of it). "
        "--dry-run says what would be published. Exit 1 when some still fail."
    ),
    add_arguments=add_arguments,
    run=run,
)
