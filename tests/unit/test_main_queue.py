"""bridge/publish/main_queue.py on a real librdkafka producer (no broker needed): it finds the client's
handle where confluent-kafka keeps it, and librdkafka announces its main queue's events on the descriptor.
A confluent-kafka upgrade that moves the handle fails here."""

from __future__ import annotations

import os
import select

import pytest
from confluent_kafka import Producer

from bridge.publish import main_queue


def _producer(client_id: str) -> Producer:
    # No broker at this address: a message's delivery report (its timeout) comes within a second or two.
    return Producer({"bootstrap.servers": "127.0.0.1:1", "client.id": client_id, "message.timeout.ms": 200})


def _readable(fd: int, seconds: float) -> bool:
    return bool(select.select([fd], [], [], seconds)[0])


def test_librdkafka_writes_to_the_descriptor_when_events_wait_and_stops_after_unwatch() -> None:
    producer = _producer("main-queue-test")
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        main_queue.watch(producer, "main-queue-test", write_end)
        producer.poll(0)  # librdkafka announces an event that finds the queue empty: empty it
        reports: list[object] = []
        producer.produce("t", b"v", on_delivery=lambda error, message: reports.append(error))
        while not reports:  # connection errors may be announced first
            assert _readable(read_end, 30), "no event announced"
            os.read(read_end, 512)
            assert producer.poll(0) > 0  # what was announced is there to serve
        main_queue.unwatch(producer, "main-queue-test")
        producer.produce("t", b"v", on_delivery=lambda error, message: reports.append(error))
        producer.flush(30)
        assert len(reports) == 2 and not _readable(read_end, 0)  # reported, unannounced
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_handle_that_is_not_the_producers_client_is_refused() -> None:
    producer = _producer("main-queue-test-2")
    with pytest.raises(main_queue.MainQueueUnavailable, match="needs updating"):
        main_queue.watch(producer, "some-other-client", -1)
