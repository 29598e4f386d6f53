"""KafkaPublisher against an address where no broker listens: a real librdkafka producer, no broker needed."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import uvloop
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import REGISTRY

from bridge.config import KafkaSettings
from bridge.publish.kafka import KafkaPublisher, PublishError, admin_client

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


def _same_pipe(fd: int, inode: int) -> bool:
    """Whether `fd` is still open on the pipe with that inode (a closed number may be reused meanwhile)."""
    try:
        return os.fstat(fd).st_ino == inode
    except OSError:
        return False


@pytest.mark.parametrize(
    "new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
@pytest.mark.parametrize("on_the_loop", [True, False], ids=["on-the-loop", "from-a-thread"])
def test_close_stops_watching_and_closes_the_wake_pipe(
    new_loop: Callable[[], asyncio.AbstractEventLoop], on_the_loop: bool
) -> None:
    """On the loop's thread (`idaas-bridge replay`) or from another (the shutdown), on either loop: uvloop's
    remove_reader answers None where asyncio's answers a bool, which the compiled publisher once refused
    with a TypeError, leaving both ends of the pipe open."""
    failures: list[dict[str, object]] = []

    async def scenario() -> tuple[tuple[int, int], list[int]]:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: failures.append(context))
        publisher = KafkaPublisher(NOWHERE, 1.0, "test")
        publisher.start()
        await asyncio.sleep(0)
        pipe = publisher._wake_pipe
        assert pipe is not None
        inodes = [os.fstat(fd).st_ino for fd in pipe]
        if on_the_loop:
            publisher.close(0)
        else:
            await asyncio.to_thread(publisher.close, 0)
        await asyncio.sleep(0.05)  # the loop runs what close() handed it
        return pipe, inodes

    with asyncio.Runner(loop_factory=new_loop) as runner:
        pipe, inodes = runner.run(scenario())
    assert failures == []
    assert [_same_pipe(fd, inode) for fd, inode in zip(pipe, inodes, strict=True)] == [False, False]


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
        #: Each record's delivery callback, as the publisher hands it to librdkafka, by the record's value.
        callbacks: dict[int, Callable[[KafkaError | None, Message], None]] = {}

        class RememberingProducer(Producer):
            def produce(self, *args: Any) -> None:  # positional, as the publisher calls it
                callbacks[int(args[1])] = args[4]
                super().produce(*args)

        # librdkafka reports nothing within the test: the reports are the test's.
        publisher = KafkaPublisher(NOWHERE, 30.0, "test", make_producer=RememberingProducer)
        publisher.start()

        async def publish(i: int) -> object:
            started = loop.time()
            try:
                delivered = await publisher.publish(topic, b"k", b"%d" % i, [], 0, deadline)
            except PublishError as exc:
                return exc.reason, loop.time() - started
            return delivered.offset

        async def report(*indices: int) -> None:
            """Each record's report, through its own callback on another thread (as close()'s flush serves
            them): handed to the loop, which settles them in a turn of its own."""

            def serve() -> None:
                for i in indices:
                    callbacks[i](None, Message(topic=topic, partition=0, offset=i))

            await asyncio.to_thread(serve)

        async def wave(first: int) -> list[asyncio.Task[object]]:
            tasks = [asyncio.create_task(publish(i)) for i in range(first, first + wave_size)]
            await asyncio.sleep(0.1)
            await report(*reversed(range(first, first + wave_size, 3)))
            return tasks

        try:
            tasks = []
            for first in (0, wave_size, 2 * wave_size):
                tasks += await wave(first)
                await asyncio.sleep(0.15)  # the next wave comes while this one still waits
            outcomes = await asyncio.gather(*tasks)
            tasks += await wave(3 * wave_size)
            outcomes += await asyncio.gather(*tasks[3 * wave_size :])
            await report(*range(1, 4 * wave_size, 3))
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
