"""KafkaPublisher against an address where no broker listens: a real librdkafka producer, no broker needed."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
import uvloop
from confluent_kafka import Message
from prometheus_client import REGISTRY

from bridge.config import KafkaSettings
from bridge.publish.kafka import Delivered, KafkaPublisher, PublishError, admin_client

NOWHERE = replace(KafkaSettings(), bootstrap_servers="127.0.0.1:1", statistics_interval_seconds=0.1)


def test_an_ack_timeout_logs_no_future_exception_never_retrieved(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        publisher = KafkaPublisher(NOWHERE, 0.3, "test")
        publisher.start()
        try:
            try:
                await publisher.publish("t", b"k", b"v", [], 0, deadline=0.05)
            except PublishError as exc:
                assert exc.reason == "ack_timeout"
            else:
                raise AssertionError("published with no broker")
            await asyncio.sleep(2.5)  # librdkafka reports the message's own timeout meanwhile (~1 s scans)
        finally:
            await asyncio.to_thread(publisher.close, 0)
        gc.collect()  # the abandoned future is collected: asyncio would log its unretrieved exception

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()] == []


def test_up_turns_false_when_no_broker_answers_without_any_probe() -> None:
    async def scenario() -> bool:
        publisher = KafkaPublisher(NOWHERE, 1.0, "test", export_statistics=True)
        publisher.up = True  # as if the start-up check had found a broker
        publisher.start()
        try:
            for _ in range(50):
                if not publisher.up:
                    break
                await asyncio.sleep(0.1)
            return publisher.up
        finally:
            await asyncio.to_thread(publisher.close, 0)

    assert asyncio.run(scenario()) is False


def _count(topic: str, result: str) -> float:
    return (
        REGISTRY.get_sample_value("idaas_bridge_kafka_messages_total", {"topic": topic, "result": result})
        or 0
    )


@pytest.mark.parametrize(
    "new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_each_of_many_records_resolves_with_its_own_report_or_fails_at_its_own_deadline(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Waves of publishes whose deadlines and reports interleave: each wave is published while the one
    before still waits, a third of each is acknowledged in time (newest first), a third only after its
    deadline, a third never. The last wave starts once everything before it has failed, with no deadline
    pending. Each record gets its own report or fails at its own deadline, the metrics count every report
    and every timeout once, and nothing keeps a settled record."""
    topic = f"interleaved-{new_loop.__module__}"
    deadline = 0.4
    wave_size = 30
    before = {result: _count(topic, result) for result in ("delivered", "timeout")}

    async def scenario() -> tuple[dict[int, object], int]:
        loop = asyncio.get_running_loop()
        publisher = KafkaPublisher(NOWHERE, 30.0, "test")  # librdkafka reports nothing within the test
        publisher.start()
        futures: dict[int, asyncio.Future[Delivered]] = {}
        produce = publisher.produce

        def remembering_produce(*args: object) -> asyncio.Future[Delivered]:
            future = futures[int(args[2])] = produce(*args)  # type: ignore[arg-type]
            return future

        publisher.produce = remembering_produce  # type: ignore[method-assign]

        async def publish(i: int) -> object:
            started = loop.time()
            try:
                delivered = await publisher.publish(topic, b"k", b"%d" % i, [], 0, deadline)
            except PublishError as exc:
                return exc.reason, loop.time() - started
            return delivered.offset

        def report(i: int) -> None:
            message = Message(topic=topic, partition=0, offset=i)
            publisher._queue_report((futures[i], topic, time.perf_counter(), None, message))

        async def wave(first: int) -> list[asyncio.Task[object]]:
            tasks = [asyncio.create_task(publish(i)) for i in range(first, first + wave_size)]
            await asyncio.sleep(0.1)
            for i in reversed(range(first, first + wave_size, 3)):
                report(i)
            return tasks

        try:
            tasks = []
            for first in (0, wave_size, 2 * wave_size):
                tasks += await wave(first)
                await asyncio.sleep(0.15)  # the next wave comes while this one still waits
            outcomes = await asyncio.gather(*tasks)
            tasks += await wave(3 * wave_size)
            outcomes += await asyncio.gather(*tasks[3 * wave_size :])
            for i in range(1, 4 * wave_size, 3):
                report(i)
            await asyncio.sleep(0.1)
            still_queued = sum(len(queue._waiting) for queue in publisher._ack_deadlines.values())
        finally:
            await asyncio.to_thread(publisher.close, 0)
        return dict(enumerate(outcomes)), still_queued

    with asyncio.Runner(loop_factory=new_loop) as runner:
        outcomes, still_queued = runner.run(scenario())
    in_time = [i for i in outcomes if i % 3 == 0]
    assert {i: outcomes[i] for i in in_time} == {i: i for i in in_time}
    for i, outcome in outcomes.items():
        if i % 3:
            assert isinstance(outcome, tuple) and outcome[0] == "ack_timeout", (i, outcome)
            assert deadline - 0.002 <= outcome[1] < deadline + 1.0, (i, outcome)  # uvloop: ms clock
    assert _count(topic, "timeout") - before["timeout"] == len(outcomes) - len(in_time)
    late = len(range(1, len(outcomes), 3))
    assert _count(topic, "delivered") - before["delivered"] == len(in_time) + late
    assert still_queued == 0


def test_the_admin_clients_log_lines_go_through_logging_not_raw_to_stderr(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The serving bridge's log is JSON lines; librdkafka writes a client's lines raw to stderr unless it
    has a logger. Its debug lines make some at once (a line of the start-up's only came now and then)."""
    settings = replace(NOWHERE, client_properties={"debug": "generic"})
    caplog.set_level(logging.DEBUG, logger="bridge.kafka.admin")
    admin = admin_client(settings)
    admin.poll(0.5)  # librdkafka hands its log lines to the logger in poll()
    del admin
    assert "|" not in capfd.readouterr().err  # librdkafka's raw format: %7|<time>|<facility>|<client>| ...
    assert any(record.name == "bridge.kafka.admin" for record in caplog.records)
