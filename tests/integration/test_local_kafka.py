"""The local broker is a real Kafka: what an idempotent acks=all producer wrote comes back exactly."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer

from tests.kafka_broker import SCRIPT, LocalKafka, create_topics

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


def test_the_broker_keeps_no_descriptor_of_whoever_started_it(tmp_path: Path) -> None:
    """`flock bench.lock make bench` starts the broker through kafka.sh with the lock's descriptor open: a
    broker that kept it would hold the machine's measuring lock for as long as it runs."""
    lock = tmp_path / "measuring.lock"
    lock.touch()
    broker = LocalKafka.private("inherited-descriptors")
    try:
        with lock.open() as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            broker.start(pass_fds=(held.fileno(),))
        with lock.open() as other:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while anyone holds it
    finally:
        broker.wipe()


def test_ctrl_c_in_the_shell_that_started_the_broker_does_not_reach_it() -> None:
    """`make run` starts the broker, then serves in the foreground: Ctrl-C signals the terminal's
    foreground process group, and Kafka shuts down on SIGINT. The broker must not be in that group (nor in
    the terminal's session, whose end hangs it up): stopping it is `make kafka-down`'s job."""
    broker = LocalKafka.private("foreground-job")
    try:
        # As a terminal runs a command: in a process group (and here a session) of its own.
        job = subprocess.Popen(
            [str(SCRIPT), "up"],
            env=broker.env(),
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output, _ = job.communicate(timeout=120)
        assert job.returncode == 0, output
        pid = int((broker.instance_dir / "kafka.pid").read_text())
        assert os.getpgid(pid) != job.pid and os.getsid(pid) != job.pid
        broker.wait_ready()  # it is still the broker that answers
    finally:
        broker.wipe()
