"""CPU of the Kafka publish path per record, one part at a time: the event loop's thread only, on uvloop.

    python -m bench.publish_path PART [repeats]    min and median of the repeats, µs per record
    python -m bench.publish_path PART-once N       N records and exit: under `valgrind --tool=callgrind
                                                   --separate-threads=yes`, the loop thread's instructions
                                                   for N=20000 minus N=0, over 20000 (PART: produce, settle)

Parts: `publish` (publish() and its produce(), resolved at once, the turn's records handed to a producer
that sends nothing: the ack deadline's bookkeeping and the turn's queue, librdkafka left out), `produce`
(a real producer: produce() and the hand-over to librdkafka at the end of the loop's turn), `settle`
(_settle fed real delivery reports), `submit` (DurableDelivery.submit over a publisher that answers at
once), `loop` (waves of 128 concurrent publish() on the broker, its reports served; the Task and gather
per record included), `threads` (every thread of the process, librdkafka's included, per record: 128
concurrent clients that each spend SPIN_MICROSECONDS of the loop's CPU, as the bridge's own work on a
delivery does, then publish() a real record (native format, its five headers) and wait for the
acknowledgement; records reach librdkafka one by one, as under load, not in waves; it also prints the
threads' voluntary context switches per 100 records, librdkafka's broker thread's wake-ups among them).
The broker is kafka.sh's default instance (KAFKA_PORT, default 9092), running. To compare two code
versions, run each in its own process with the other version's package first on PYTHONPATH, several times
alternately (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka.cimpl import NewTopic

from bench.deliveries import delivery_bodies
from bridge import metrics
from bridge.config import KafkaSettings
from bridge.events.envelope import parse_envelope
from bridge.events.normalize import normalize
from bridge.publish.delivery import DurableDelivery
from bridge.publish.kafka import Delivered, KafkaPublisher, admin_client
from bridge.routing import OutboundRecord, Router

TOPIC = "bench.publish-path"
SETTINGS = dataclasses.replace(
    KafkaSettings(), bootstrap_servers=f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
)
HEADERS = [("event_type", b"user.created"), ("schema", b"ecs"), ("tenant", b"prod")]
VALUE = b"x" * 600
RECORDS = 2000
DEADLINE = 0.01
#: `threads`: three partitions, as the benchmark's topics have (tests/kafka_broker.create_topics).
THREADS_TOPIC = "bench.publish-path-threads"
THREADS_CLIENTS = 128
THREADS_RECORDS = 12_800
#: `threads`: the loop's CPU each delivery costs besides publishing (the bridge's, with Kafka stubbed).
SPIN_MICROSECONDS = 100


def _create_topics() -> None:
    admin = admin_client(SETTINGS)  # must outlive the futures: destroying it fails them
    futures = admin.create_topics([NewTopic(TOPIC, 1, 1), NewTopic(THREADS_TOPIC, 3, 1)])
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


class _Unsent:
    """A producer that takes every record and sends none."""

    def produce(self, *args: object) -> None:
        pass


def _publisher(unsent: bool = False) -> KafkaPublisher:
    """A publisher bound to the running loop without serving librdkafka's events; with `unsent`, the records
    it hands over go nowhere. (Its producer is replaced rather than made by `make_producer`, so that the part
    also runs on the code before that argument, the compiled publisher's baseline.)"""
    publisher = KafkaPublisher(SETTINGS, 5.0, "bench")
    publisher._loop = asyncio.get_running_loop()
    if unsent:
        publisher._producer = _Unsent()  # type: ignore[assignment]
    return publisher


def _delivery_reports(publisher: KafkaPublisher, count: int) -> list[Message]:
    reports: list[Message] = []
    for _ in range(count):
        publisher._producer.produce(
            TOPIC, VALUE, b"k", on_delivery=lambda error, message: reports.append(message)
        )
    publisher._producer.flush(10)
    assert len(reports) == count and reports[0].error() is None
    return reports


def _drive(coroutine: Any, result: Delivered) -> None:
    """Run a coroutine that awaits a future to its end, resolving the future where it waits."""
    future = coroutine.send(None)  # what the coroutine waits for: its future
    future.set_result(result)
    try:  # noqa: SIM105 (timed: a with-statement would cost more than some of the work measured)
        coroutine.send(None)
    except StopIteration:
        pass


async def _repeat(
    repeats: int, one_repeat: Callable[[], Awaitable[None]], records: int = RECORDS
) -> list[float]:
    figures = []
    for _ in range(repeats):
        started = time.thread_time()
        await one_repeat()
        figures.append((time.thread_time() - started) / records * 1e6)
    return figures


async def bench_publish(repeats: int) -> list[float]:
    publisher = _publisher(unsent=True)
    result = Delivered(TOPIC, 0, 0)

    async def one_repeat() -> None:
        for i in range(RECORDS):
            _drive(publisher.publish(TOPIC, b"k", VALUE, HEADERS, 0, DEADLINE), result)
            if i % 100 == 99:
                await asyncio.sleep(0)  # the hand-over and the deadline's expiry work run, and count

    figures: list[float] = []
    for _ in range(repeats):
        figures += await _repeat(1, one_repeat)
        await asyncio.sleep(2 * DEADLINE)
    return figures


async def bench_produce(repeats: int) -> list[float]:
    publisher = _publisher()
    now_ms = int(time.time() * 1000)

    async def one_repeat() -> None:
        for _ in range(RECORDS):
            publisher.produce(TOPIC, b"k", VALUE, HEADERS, now_ms)
        publisher._hand_over()  # what the end of the loop's turn does, timed with the produce() calls

    figures: list[float] = []
    for _ in range(repeats):
        figures += await _repeat(1, one_repeat)
        await asyncio.to_thread(publisher._producer.flush, 10)
        publisher._producer.poll(0)  # the reports, settled at the next turn, untimed
        await asyncio.sleep(0.01)
    return figures


async def bench_settle(repeats: int) -> list[float]:
    publisher = _publisher()
    loop = asyncio.get_running_loop()
    reports = _delivery_reports(publisher, RECORDS)
    futures: list[asyncio.Future[Delivered]] = []

    async def one_repeat() -> None:
        started_at = time.perf_counter()
        for future, message in zip(futures, reports, strict=True):
            publisher._settle(future, TOPIC, started_at, None, message)

    figures: list[float] = []
    for _ in range(repeats):
        futures[:] = [loop.create_future() for _ in range(RECORDS)]
        figures += await _repeat(1, one_repeat)
    return figures


async def bench_submit(repeats: int) -> list[float]:
    result = Delivered(TOPIC, 0, 0)

    class Instant:
        async def publish(self, *args: object) -> Delivered:
            return result

    delivery = DurableDelivery(Instant(), None, 1.5, "kafka_first")  # type: ignore[arg-type]
    record = OutboundRecord(TOPIC, b"k", VALUE, HEADERS, 0)

    async def one_repeat() -> None:
        for _ in range(RECORDS):
            try:  # noqa: SIM105 (timed, as in _drive)
                delivery.submit(record).send(None)
            except StopIteration:
                pass

    return await _repeat(repeats, one_repeat)


async def bench_loop(repeats: int) -> list[float]:
    publisher = KafkaPublisher(SETTINGS, 5.0, "bench")
    publisher.start()
    now_ms = int(time.time() * 1000)
    waves = RECORDS // 128

    async def one_repeat() -> None:
        for _ in range(waves):
            await asyncio.gather(
                *(publisher.publish(TOPIC, b"k", VALUE, HEADERS, now_ms, 1.75) for _ in range(128))
            )

    try:
        return await _repeat(repeats, one_repeat, records=waves * 128)
    finally:
        await asyncio.to_thread(publisher.close, 5)


def _thread_counters() -> dict[str, tuple[int, int]]:
    """Per thread of this process: CPU in clock ticks (user + system) and voluntary context switches."""
    counters = {}
    for task in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{task}/stat").read_text()
            status = Path(f"/proc/self/task/{task}/status").read_text()
        except FileNotFoundError:  # the thread ended
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        switches = next(line for line in status.splitlines() if line.startswith("voluntary_ctxt_switches"))
        counters[task] = (int(fields[11]) + int(fields[12]), int(switches.split()[1]))
    return counters


def _thread_names(publisher: KafkaPublisher) -> dict[str, str]:
    """librdkafka names its threads (rdk:main, rdk:broker<id>); the loop by role."""
    names = {str(os.getpid()): "loop"}
    for task in os.listdir("/proc/self/task"):
        if task not in names:
            names[task] = Path(f"/proc/self/task/{task}/comm").read_text().strip()
    return names


def _native_records(count: int) -> list[OutboundRecord]:
    router = Router(
        replace(SETTINGS, topics={k: replace(t, name=THREADS_TOPIC) for k, t in SETTINGS.topics.items()})
    )
    now = datetime.now(UTC)
    return [router.route(normalize(parse_envelope(body), "prod", now)) for body in delivery_bodies(count)]


async def bench_threads(repeats: int) -> list[float]:
    publisher = KafkaPublisher(SETTINGS, 5.0, "bench", export_statistics=True)
    publisher.start()
    records = _native_records(2000)
    each = THREADS_RECORDS // THREADS_CLIENTS
    spin = SPIN_MICROSECONDS / 1e6

    async def client(number: int) -> None:
        for i in range(each):
            until = time.perf_counter() + spin
            while time.perf_counter() < until:
                pass
            r = records[(number * each + i) % len(records)]
            await publisher.publish(r.topic, r.key, r.value, r.headers, r.timestamp_ms, 5.0)

    async def one_repeat() -> None:
        await asyncio.gather(*(client(number) for number in range(THREADS_CLIENTS)))

    figures = []
    try:
        await one_repeat()  # connections, metadata, the first batches
        names = _thread_names(publisher)
        ticks_to_us = 1e6 / os.sysconf("SC_CLK_TCK") / (each * THREADS_CLIENTS)
        for _ in range(repeats):
            before = _thread_counters()
            await one_repeat()
            after = _thread_counters()
            cpu: Counter[str] = Counter()
            switches: Counter[str] = Counter()
            for task, (ticks, switched) in after.items():
                ticks_before, switched_before = before.get(task, (0, 0))
                cpu[names.get(task, task)] += ticks - ticks_before
                switches[names.get(task, task)] += switched - switched_before
            total = sum(cpu.values()) * ticks_to_us
            per_thread = ", ".join(
                f"{name} {ticks * ticks_to_us:.1f} ({switches[name] * 100 / (each * THREADS_CLIENTS):.0f} cs)"
                for name, ticks in cpu.most_common()
            )
            print(f"  {total:.1f} µs per record, spin included: {per_thread}", flush=True)
            figures.append(total)
    finally:
        await asyncio.to_thread(publisher.close, 5)
    return figures


async def once_produce(count: int) -> None:
    publisher = _publisher()
    for _ in range(count):
        publisher.produce(TOPIC, b"k", VALUE, HEADERS, 1_700_000_000_000)
    publisher._hand_over()
    os._exit(0)  # no flush: only the produce() calls count


async def once_settle(count: int) -> None:
    publisher = _publisher()
    loop = asyncio.get_running_loop()
    reports = _delivery_reports(publisher, 100)
    futures = [loop.create_future() for _ in range(count)]
    started_at = time.perf_counter()
    for i, future in enumerate(futures):
        publisher._settle(future, TOPIC, started_at, None, reports[i % 100])
    os._exit(0)


BENCHMARKS: dict[str, Callable[[int], Coroutine[Any, Any, list[float]]]] = {
    "publish": bench_publish,
    "produce": bench_produce,
    "settle": bench_settle,
    "submit": bench_submit,
    "loop": bench_loop,
    "threads": bench_threads,
}
ONCE: dict[str, Callable[[int], Coroutine[Any, Any, None]]] = {
    "produce-once": once_produce,
    "settle-once": once_settle,
}


def main() -> None:
    part = sys.argv[1]
    number = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    _create_topics()
    for result in metrics.KAFKA_RESULTS:
        metrics.KAFKA_MESSAGES.labels(topic=TOPIC, result=result)
    if part in ONCE:
        gc.disable()  # the records pile up (in librdkafka, or as futures): the collector would walk them all
        uvloop.run(ONCE[part](number))
        return
    figures = uvloop.run(BENCHMARKS[part](number))
    print(f"{part}: min {min(figures):.3f} µs, median {statistics.median(figures):.3f} µs per record")


if __name__ == "__main__":
    main()
