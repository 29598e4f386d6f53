"""Records Kafka will not take or would not keep: neither lost nor allowed to block the spool (real broker,
real bridge).

Two ways a record can be too large: larger than kafka.max_record_bytes (the bridge dead-letters the delivery
before producing), or larger than a topic's max.message.bytes (the broker refuses it; the drainer moves it to
the rejected file, and `idaas-bridge rejected --replay` publishes it once the topic is fixed). And one way a
record could vanish after its 2xx: a timestamp older than the topic's retention.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from bridge.events.samples import sample_deliveries
from bridge.publish.kafka import MAX_RECORD_AGE_MS
from tests.e2e.harness import (
    BRIDGE,
    BridgeProcess,
    consume_all,
    metric_value,
    offline_bridge,
    plain_bridge,
    signed_post,
    topic_names,
)
from tests.kafka_broker import create_topics

pytestmark = pytest.mark.kafka


def user_updated(delivery_id: str, **data: object) -> bytes:
    sample = next(s for s in sample_deliveries() if s["type"] == "user.updated")
    return orjson.dumps({**sample, "id": delivery_id, "data": {**sample["data"], **data}})


def set_topic_config(bootstrap: str, topic: str, name: str, value: int) -> None:
    entry = ConfigEntry(name, str(value), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def rejected_command(bridge: BridgeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BRIDGE), "rejected", "--config", str(bridge.workdir / "bridge.yaml"), *args],
        capture_output=True,
        text=True,
        env=bridge.environment(),
        timeout=120,
    )


def ids_in(messages: list[Message]) -> list[str]:
    return [json.loads(m.value())["id"] for m in messages]


def test_a_record_the_topic_refuses_moves_aside_without_blocking_the_spool_and_replays_later(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    # One partition, so that the records spooled below reach the broker in one batch.
    user_topic = topic_names(topic_prefix)["user"]
    create_topics(kafka_bootstrap, [user_topic], partitions=1)
    set_topic_config(kafka_bootstrap, user_topic, "max.message.bytes", 20_000)
    # Spooled while Kafka is unreachable; the next bridge drains them together.
    offline = offline_bridge(tmp_path, kafka_bootstrap, topic_prefix)
    incompressible = base64.b64encode(os.urandom(60_000)).decode()
    bodies = {
        "before": user_updated("limit-before"),
        "big": user_updated("limit-big", note=incompressible),
        "after": user_updated("limit-after"),
    }
    offline.start()
    try:
        for body in bodies.values():
            answer = signed_post(offline, body)
            assert answer.status_code == 202 and answer.json()["status"] == "spooled", answer.text
    finally:
        offline.stop()

    bridge = offline.restarted_with(kafka_bootstrap)
    bridge.start()
    try:
        # The broker refuses the whole batch for the one large record; the two others still get through.
        messages = consume_all(kafka_bootstrap, [user_topic], expected=2)
        assert sorted(ids_in(messages)) == ["limit-after", "limit-before"]
        deadline = time.monotonic() + 30
        while metric_value(bridge.metrics(), "idaas_bridge_spool_records") != 0:
            assert time.monotonic() < deadline, bridge.log_tail()
            time.sleep(0.2)
        metrics = bridge.metrics()
        assert metric_value(metrics, "idaas_bridge_rejected_records") == 1
        assert metric_value(metrics, "idaas_bridge_spool_rejected_total", topic=user_topic) == 1
        log = bridge.log_path.read_text()
        assert f"topic {user_topic} takes records of at most 20000 bytes (max.message.bytes)" in log
        # 20000 bytes is too few to suggest a smaller kafka.max_record_bytes: the message ends there.
        assert "Raise the topic's max.message.bytes to 2162688\"" in log
        assert f"topic {bridge.topics['deadletter']} takes" not in log  # created with room to spare
        listing = rejected_command(bridge)
        assert listing.returncode == 0, listing.stderr
        assert f" {user_topic} " in listing.stdout and "Message size too large" in listing.stdout
        assert "1 rejected record(s)" in listing.stdout

        still_small = rejected_command(bridge, "--replay")
        assert still_small.returncode == 1 and "1 still in" in still_small.stdout, still_small.stdout

        set_topic_config(kafka_bootstrap, user_topic, "max.message.bytes", 1_000_000)
        replay = rejected_command(bridge, "--replay")
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "published 1 rejected record(s); 0 still in" in replay.stdout

        messages = consume_all(kafka_bootstrap, [user_topic], expected=3)
        assert sorted(ids_in(messages)) == ["limit-after", "limit-before", "limit-big"]
        big = next(m for m in messages if json.loads(m.value())["id"] == "limit-big")
        assert json.loads(big.value())["data"]["note"] == incompressible
        assert dict(big.headers() or [])["idaas-delivery-id"] == b"limit-big"
        deadline = time.monotonic() + 15  # the running bridge notices the replay at its next gauge refresh
        while metric_value(bridge.metrics(), "idaas_bridge_rejected_records") != 0:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        bridge.stop()


def test_an_event_larger_than_max_record_bytes_is_dead_lettered_whole(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    bridge = plain_bridge(
        tmp_path,
        kafka_bootstrap,
        topic_prefix,
        **{"kafka.max_record_bytes": 65_536, "server.max_body_bytes": 40_000},
    )
    bridge.start()
    try:
        # The native record holds entityName twice (entity.name and data): about 2 x 35 kB > 64 KiB.
        body = user_updated("too-large", entityName="n" * 35_000)
        assert len(body) < 40_000
        answer = signed_post(bridge, body)
        assert answer.status_code == 202 and answer.json()["status"] == "deadlettered", answer.text
        [message] = consume_all(kafka_bootstrap, [bridge.topics["deadletter"]], expected=1)
        record = json.loads(message.value())
        assert record["body_encoding"] == "utf-8" and record["body"].encode() == body
        assert record["reason"].startswith(f"the native record for topic {bridge.topics['user']} would be ")
        assert record["reason"].endswith("bytes, above kafka.max_record_bytes = 65536")
        assert consume_all(kafka_bootstrap, [bridge.topics["user"]], expected=1, timeout=3) == []
        metrics = bridge.metrics()
        assert metric_value(metrics, "idaas_bridge_deadletters_total", reason="record_too_large") == 1
    finally:
        bridge.stop()


def broker_setting(bootstrap: str, name: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    broker = next(iter(admin.list_topics(timeout=10).brokers))
    [future] = admin.describe_configs([ConfigResource(ResourceType.BROKER, str(broker))]).values()
    return int(future.result(timeout=30)[name].value)


def low_watermark(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[0])
    finally:
        consumer.close()


def test_a_late_event_is_not_deleted_by_retention_as_soon_as_it_is_written(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    interval_ms = broker_setting(kafka_bootstrap, "log.retention.check.interval.ms")
    if interval_ms > 10_000:
        pytest.skip(f"the broker checks retention every {interval_ms} ms; this test needs 10 s or less")
    user_topic = topic_names(topic_prefix)["user"]
    create_topics(kafka_bootstrap, [user_topic], partitions=1)
    retention_ms = 36 * 3600 * 1000  # longer than MAX_RECORD_AGE_MS, far shorter than the event's age
    set_topic_config(kafka_bootstrap, user_topic, "retention.ms", retention_ms)
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    # The control: a record stamped three days ago is deleted by the broker's next retention pass.
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(user_topic, b"control", timestamp=int(three_days_ago.timestamp() * 1000))
    assert producer.flush(30) == 0
    deadline = time.monotonic() + 10 + 3 * interval_ms / 1000
    while low_watermark(kafka_bootstrap, user_topic) == 0:
        assert time.monotonic() < deadline, "the broker never deleted the expired control record"
        time.sleep(0.2)

    bridge = plain_bridge(tmp_path, kafka_bootstrap, topic_prefix)
    bridge.start()
    try:
        sample = json.loads(user_updated("late-event"))
        event_time = three_days_ago.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        answer = signed_post(bridge, orjson.dumps({**sample, "eventTime": event_time}))
        assert answer.status_code == 200 and answer.json()["status"] == "published", answer.text
        produced_after = time.time() * 1000
        time.sleep(3 * interval_ms / 1000 + 1)  # several retention passes
        [message] = consume_all(kafka_bootstrap, [user_topic], expected=1)
        assert json.loads(message.value())["occurred_at"] == event_time  # the event time stays in the value
        stamped = message.timestamp()[1]
        assert produced_after - MAX_RECORD_AGE_MS - 5000 <= stamped <= produced_after - MAX_RECORD_AGE_MS
        log = bridge.log_path.read_text()
        assert f"topic {user_topic} keeps records for 36 h (retention.ms)" in log
        assert f"Raise retention.ms to {2 * MAX_RECORD_AGE_MS} or more" in log
    finally:
        bridge.stop()
