"""The local broker is a real Kafka: what an idempotent acks=all producer wrote comes back exactly."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer

from tests.kafka_broker import create_topics

pytestmark = pytest.mark.kafka


def test_round_trip_keeps_values_and_order(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}round-trip"
    create_topics(kafka_bootstrap, [topic], partitions=3)
    sent = [f"record-{i:03d}".encode() for i in range(100)]

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True})
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    # Kafka orders records per partition only, so all go to one partition.
    for value in sent:
        producer.produce(topic, value=value, partition=0, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert failures == []

    # A consumer group, not a bare assignment: it exercises the group coordinator and __consumer_offsets.
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"{topic_prefix}reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received: list[Message] = []
    deadline = time.monotonic() + 60
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            received.append(message)
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()

    assert [m.value() for m in received] == sent
    assert {m.partition() for m in received} == {0}
    assert [m.offset() for m in received] == list(range(len(sent)))
