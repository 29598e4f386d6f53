"""The shutdown's drain against a real broker: it goes on while the spool empties, whatever the bridge's
cached view of Kafka says, and gives up soon when nothing moves."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from bridge.config import KafkaSettings
from bridge.publish.drainer import DRAIN_STALL_SECONDS, Drainer
from bridge.publish.kafka import KafkaPublisher
from bridge.publish.rejected import RejectedRecords
from bridge.publish.spool import Spool
from bridge.routing import OutboundRecord
from tests.e2e.harness import consume_all
from tests.kafka_broker import create_topics

pytestmark = pytest.mark.kafka

RECORDS = 3000


async def drain_at_shutdown(tmp_path: Path, bootstrap: str, topic: str, drain_within: float) -> int:
    """Spool RECORDS records, start the drainer and stop it at once, as the shutdown does, with Kafka
    reported down; the records left in the spool."""
    settings = dataclasses.replace(KafkaSettings(), bootstrap_servers=bootstrap)
    spool = Spool(tmp_path / "spool", 64 << 20, 1 << 20)
    await spool.open()
    for number in range(RECORDS):
        await spool.append(OutboundRecord(topic, b"k", b"record-%d" % number, [], 1_000))
    publisher = KafkaPublisher(settings, 10, "drainer")
    publisher.start()
    drainer = Drainer(spool, publisher, RejectedRecords(tmp_path / "spool"), [topic], ack_wait=15)
    drainer.start()
    try:
        await drainer.stop(drain_within, kafka_up=lambda: False)
        return spool.pending_records
    finally:
        publisher.close(5)
        await spool.close(5)


def test_the_drain_goes_on_while_the_spool_empties_though_kafka_is_reported_down(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}user"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    left = asyncio.run(drain_at_shutdown(tmp_path, kafka_bootstrap, topic, drain_within=60))
    assert left == 0
    assert len(consume_all(kafka_bootstrap, [topic], expected=RECORDS)) == RECORDS


def test_the_drain_gives_up_when_nothing_moves_and_kafka_is_reported_down(tmp_path: Path) -> None:
    started = time.monotonic()
    left = asyncio.run(drain_at_shutdown(tmp_path, "127.0.0.1:1", "idaas.user", drain_within=60))
    assert left == RECORDS
    # The stall window, not the whole budget: a real outage does not hold the pod for its grace period.
    assert time.monotonic() - started < 60 - DRAIN_STALL_SECONDS
