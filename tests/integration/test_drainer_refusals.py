"""The drainer against a real broker that refuses one record of a batch: that record moves to the rejected
file, and the records around it reach Kafka once each."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from bridge.config import KafkaSettings
from bridge.publish.drainer import Drainer
from bridge.publish.kafka import KafkaPublisher
from bridge.publish.rejected import RejectedRecords
from bridge.publish.spool import Spool
from bridge.routing import OutboundRecord
from tests.e2e.harness import consume_all
from tests.kafka_broker import create_topics

pytestmark = pytest.mark.kafka


def refuse_records_above(bootstrap: str, topic: str, size: int) -> None:
    entry = ConfigEntry("max.message.bytes", str(size), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the futures resolve
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def test_records_acknowledged_behind_a_refused_one_are_not_published_again(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """librdkafka sends a drain batch in several produce requests (with linger.ms 0, whatever was queued when
    the one before left), so the records after a refused one were acknowledged, left unconfirmed behind it,
    and produced again: the record-limits e2e test found one twice. One record per produce request here
    makes that split certain."""
    topic = f"{topic_prefix}user"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    refuse_records_above(kafka_bootstrap, topic, 20_000)
    settings = dataclasses.replace(
        KafkaSettings(), bootstrap_servers=kafka_bootstrap, client_properties={"batch.num.messages": "1"}
    )
    names = ["before", "big", "after-1", "after-2"]

    async def scenario() -> None:
        spool = Spool(tmp_path / "spool", 10 << 20, 1 << 20)
        await spool.open()
        for name in names:
            value = os.urandom(30_000) if name == "big" else name.encode()
            await spool.append(OutboundRecord(topic, name.encode(), value, [], 1_000))
        publisher = KafkaPublisher(settings, 10, "drainer")
        publisher.start()
        rejected = RejectedRecords(tmp_path / "spool")
        drainer = Drainer(spool, publisher, rejected, [topic], ack_wait=15)
        drainer.start()
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while spool.pending_records:
                assert asyncio.get_running_loop().time() < deadline, "the drain did not settle every record"
                await asyncio.sleep(0.05)
        finally:
            await drainer.stop()
            publisher.close(5)
            await spool.close(5)
        assert [kept.record.key for kept in rejected.read()] == [b"big"]

    asyncio.run(scenario())
    messages = consume_all(kafka_bootstrap, [topic], expected=3)
    assert sorted(message.value() for message in messages) == [b"after-1", b"after-2", b"before"]
