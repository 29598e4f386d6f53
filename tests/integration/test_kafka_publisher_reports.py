"""Where KafkaPublisher's delivery reports are served (real broker): on the event loop when librdkafka
announces them, or on whichever thread flushes the producer at close()."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

import pytest
from confluent_kafka import Producer

from bridge.config import KafkaSettings
from bridge.publish import kafka
from bridge.publish.kafka import Delivered, KafkaPublisher
from tests.kafka_broker import create_topics

pytestmark = pytest.mark.kafka

RECORDS = 50


def _publisher(bootstrap: str, **seams: Any) -> KafkaPublisher:
    """`seams`: KafkaPublisher's `make_producer` or `topic_metrics`, a test's stand-in."""
    return KafkaPublisher(dataclasses.replace(KafkaSettings(), bootstrap_servers=bootstrap), 30, "t", **seams)


def _produce(publisher: KafkaPublisher, topic: str) -> list[asyncio.Future[Delivered]]:
    return [publisher.produce(topic, b"k", b"%d" % i, [], 0) for i in range(RECORDS)]


def test_a_report_arriving_while_the_loop_is_idle_settles(kafka_bootstrap: str, topic_prefix: str) -> None:
    """Nothing but librdkafka's announcement can wake the loop for the report: no ack deadline, no timer
    but the test's own guard."""
    topic = f"{topic_prefix}idle"
    create_topics(kafka_bootstrap, [topic])

    async def scenario() -> list[Delivered]:
        publisher = _publisher(kafka_bootstrap)
        publisher.start()
        try:
            settled = []
            for i in range(3):
                await asyncio.sleep(0.3)  # the loop sleeps, the producer idles
                future = publisher.produce(topic, b"k", b"%d" % i, [], 0)
                settled.append(await asyncio.wait_for(future, 60))
            return settled
        finally:
            publisher.close(5)

    delivered = asyncio.run(scenario())
    assert [d.topic for d in delivered] == [topic] * 3
    assert len({d.offset for d in delivered}) == 3


def test_reports_that_close_flushes_on_another_thread_settle_on_the_loop(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """The shutdown flushes in a thread (app.py). Debug mode makes asyncio refuse the futures' callbacks
    being scheduled from any thread but the loop's, so a report settled off the loop fails the test."""
    topic = f"{topic_prefix}flushed-elsewhere"
    create_topics(kafka_bootstrap, [topic])

    async def scenario() -> tuple[int, list[Delivered]]:
        publisher = _publisher(kafka_bootstrap)
        publisher.start()
        futures = _produce(publisher, topic)
        waiting = asyncio.gather(*futures)  # callbacks on each future: scheduled when it settles
        remaining = await asyncio.to_thread(publisher.close, 30)
        return remaining, await asyncio.wait_for(waiting, 60)

    remaining, delivered = asyncio.run(scenario(), debug=True)
    assert remaining == 0
    assert [d.topic for d in delivered] == [topic] * RECORDS
    assert len({d.offset for d in delivered}) == RECORDS


def test_a_close_on_another_thread_leaves_the_closing_turns_hand_over_to_the_loop(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """The shutdown starts close() in a thread in the turn its last records were produced in, when the
    loop's own hand-over of that turn is due: both taking from the same deque at once would send a
    partition's records out of order and settle futures off the loop. The loop is held while the thread
    closes, as a busy loop might be; every record still goes to librdkafka on the loop's thread, in the
    order produced (one partition: the offsets follow it)."""
    topic = f"{topic_prefix}closing-turn"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    handed_over_on: list[int] = []
    handed_over_elsewhere = threading.Event()

    async def scenario() -> tuple[int, int, list[Delivered]]:
        loop_thread = threading.get_ident()

        class WatchedProducer(Producer):
            """Notes the thread each record is handed to librdkafka on (one call per record)."""

            def produce(self, *args: Any) -> None:  # positional, as the publisher calls it
                handed_over_on.append(threading.get_ident())
                if threading.get_ident() != loop_thread:
                    handed_over_elsewhere.set()
                super().produce(*args)

        publisher = _publisher(kafka_bootstrap, make_producer=WatchedProducer)
        publisher.start()
        futures = _produce(publisher, topic)
        closing = asyncio.get_running_loop().run_in_executor(None, publisher.close, 30)
        handed_over_elsewhere.wait(2)  # the loop held: a close() that hands over itself does it now
        remaining = await closing
        return loop_thread, remaining, await asyncio.wait_for(asyncio.gather(*futures), 60)

    loop_thread, remaining, delivered = asyncio.run(scenario(), debug=True)
    assert set(handed_over_on) == {loop_thread} and len(handed_over_on) == RECORDS
    assert remaining == 0
    offsets = [d.offset for d in delivered]
    assert offsets == sorted(offsets) and len(set(offsets)) == RECORDS


def test_a_close_on_the_loops_thread_settles_the_reports_it_flushes(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """`idaas-bridge replay` closes its publisher on the loop's thread: the flush serves the reports there,
    and every future is settled when close() returns."""
    topic = f"{topic_prefix}flushed-on-loop"
    create_topics(kafka_bootstrap, [topic])

    async def scenario() -> tuple[int, list[bool], list[Delivered]]:
        publisher = _publisher(kafka_bootstrap)
        publisher.start()
        futures = _produce(publisher, topic)
        await asyncio.sleep(0)  # the turn's records go to librdkafka
        remaining = publisher.close(30)
        done = [future.done() for future in futures]
        return remaining, done, [future.result() for future in futures if future.done()]

    remaining, done, delivered = asyncio.run(scenario())
    assert remaining == 0 and all(done)
    assert len({d.offset for d in delivered}) == RECORDS


class FailingMetrics:
    """KafkaPublisher's `topic_metrics` whose every lookup raises (as a metric update might): counting each
    delivery report fails, after its request was resolved. `failures` holds one entry per failure."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def __call__(self, topic: str) -> kafka._TopicMetrics:
        self.failures.append(topic)
        raise RuntimeError("counting a delivery report failed")


@pytest.fixture
def counting_fails() -> FailingMetrics:
    return FailingMetrics()


def test_reports_whose_callbacks_fail_settle_on_the_loop_with_nothing_else_to_wake_it(
    kafka_bootstrap: str, topic_prefix: str, counting_fails: FailingMetrics
) -> None:
    """A callback that raises stops `poll()` where it was; the reports queued behind it must not wait for
    an event that may never come (no ack deadline, no statistics, no further record here), and its own
    request must still get its answer."""
    topic = f"{topic_prefix}failing-callbacks"
    create_topics(kafka_bootstrap, [topic], partitions=1)

    async def scenario() -> list[asyncio.Future[Delivered]]:
        publisher = _publisher(kafka_bootstrap, topic_metrics=counting_fails)
        publisher.start()
        try:
            futures = _produce(publisher, topic)
            await asyncio.wait(futures, timeout=60)
            return futures
        finally:
            publisher.close(5)

    futures = asyncio.run(scenario())
    assert [future.done() for future in futures] == [True] * RECORDS
    assert len({future.result().offset for future in futures}) == RECORDS
    assert len(counting_fails.failures) == RECORDS


def test_reports_whose_callbacks_fail_settle_when_close_flushes_on_another_thread(
    kafka_bootstrap: str, topic_prefix: str, counting_fails: FailingMetrics
) -> None:
    """The flush hands its reports to the loop; one that fails to settle there must not strand the others
    queued with it (no later report would wake the loop for them)."""
    topic = f"{topic_prefix}failing-callbacks-flushed"
    create_topics(kafka_bootstrap, [topic], partitions=1)

    async def scenario() -> list[asyncio.Future[Delivered]]:
        publisher = _publisher(kafka_bootstrap, topic_metrics=counting_fails)
        publisher.start()
        futures = _produce(publisher, topic)
        assert await asyncio.to_thread(publisher.close, 30) == 0
        await asyncio.wait(futures, timeout=60)
        return futures

    futures = asyncio.run(scenario())
    assert [future.done() for future in futures] == [True] * RECORDS
    assert len({future.result().offset for future in futures}) == RECORDS
    assert len(counting_fails.failures) == RECORDS
