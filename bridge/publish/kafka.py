"""An asyncio facade over confluent_kafka.Producer.

librdkafka does its network I/O on its own threads; its delivery reports (and statistics, errors, log
lines) wait in its main queue until `poll()` serves them, calling back once per report. Those callbacks
run on the event loop's thread: librdkafka writes a byte to a pipe the loop watches when an event reaches
the queue after the last `poll()` (`main_queue.watch`), and the loop then serves everything queued with
`poll(0)`. A quiet bridge polls only when librdkafka has an event for it (its statistics, every
kafka.statistics_interval_seconds), never on a timer of its own.

Why not a thread blocked in `poll()`, the client's documented pattern (this module's design up to the
sixth round): confluent-kafka takes the GIL for each report it calls back, so such a thread contends for
the GIL with the busy event loop once per delivery; serving them on the loop's thread, where the GIL is
there for the taking, took the CPU per delivery at 128 connections from 105 to 87 us (docs/benchmarks.md,
seventh round). Nor polling on a timer or at every turn while records are in flight: that either delays
each answer by the timer or spins the loop while it waits for the broker.

A flush in another thread (close() during the shutdown) serves reports there; those are handed to the loop
(`_queue_report`), which wakes once for all those queued by then. `produce()` itself never blocks (a full
queue raises BufferError, reported as a failed publish).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports these implicitly, which mypy --strict rejects; import them where defined.
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType

from bridge import metrics
from bridge.config import (
    KAFKA_CLIENT_ENV_PREFIX,
    MIN_RECORD_BYTES,
    ConfigError,
    KafkaSettings,
    secret_property,
    set_in_environment,
)
from bridge.errors import ReasonedError
from bridge.metric_value import HistogramValues, MetricValue
from bridge.publish import main_queue

log = logging.getLogger(__name__)

METADATA_TIMEOUT_SECONDS: Final = 2.0
#: The bridge's defaults; anything in kafka.client_properties wins except the durability settings below.
DEFAULT_PRODUCER_CONFIG: Final[dict[str, Any]] = {
    "client.id": "idaas-siem-bridge",
    "compression.type": "lz4",
    # Every answer waits for its record's acknowledgement, so the linger is a floor under every answer's
    # latency: none. Batching comes from one produce request in flight per broker instead: records
    # produced while it is out wait and leave together in the next, so a quiet bridge sends each record
    # at once and a busy one sends batches as large as a round trip's worth of deliveries. Measured
    # (docs/benchmarks.md, fourth round): at 1,000/s the median answer 2.2-2.5 ms with linger 1 ms against
    # 0.9-1.0 ms; at 128 connections 175 us per delivery with linger 1 ms, 199-201 with linger 0 and five
    # requests in flight (a produce request per record or two), 136-147 with linger 0 and one in flight.
    # Override either in kafka.client_properties (a remote cluster's round trip adds to every answer in a
    # busy bridge).
    "linger.ms": 0,
    "max.in.flight.requests.per.connection": 1,
    "queue.buffering.max.messages": 200_000,
}
#: What the bridge's promise rests on: the user cannot weaken these through client_properties.
REQUIRED_PRODUCER_CONFIG: Final[dict[str, Any]] = {"acks": "all", "enable.idempotence": True}
#: librdkafka's message.max.bytes also bounds the produce request around a record; this much more than
#: kafka.max_record_bytes keeps a record of exactly that size producible. Topics get the same limit.
PROTOCOL_OVERHEAD_BYTES: Final = 64 * 1024
#: Errors that condemn the record itself, not the connection or the cluster: retrying it can never
#: succeed until an operator changes the topic. (The broker fails a whole batch with them, so a record is
#: only judged by such an error when it was produced alone.)
RECORD_REJECTED_CODES: Final = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError.INVALID_MSG_SIZE,
    }
)

#: Kafka's time-based retention counts from the record timestamp, so a record stamped with an old event time
#: (an event IDaaS delivered late, or one that waited in the spool through a long outage) could be deleted as
#: soon as it is written. No record is produced with a timestamp older than this; the event time itself
#: stays in the value. Topics should keep records at least twice this long (start-up warns otherwise).
MAX_RECORD_AGE_MS: Final = 24 * 3600 * 1000

#: A list, as the producer takes it, so that no record's headers are copied on the way.
Headers = list[tuple[str, bytes]]
#: A message `produce()` queued for the end of the loop's turn: `KafkaPublisher._produce_now`'s arguments
#: (the timestamp before its floor).
_TurnRecord = tuple["asyncio.Future[Delivered]", str, bytes, bytes, Headers, int, float]
#: A delivery report as `_report` hands it on: `KafkaPublisher._settle`'s arguments.
_Report = tuple["asyncio.Future[Delivered]", str, float, KafkaError | None, Message]


class PublishError(ReasonedError):
    """Kafka did not confirm the message (ack timeout, queue full, broker error). `record_rejected`: the
    error was one of RECORD_REJECTED_CODES."""

    def __init__(self, reason: str, detail: str, record_rejected: bool = False) -> None:
        super().__init__(reason, detail)
        self.record_rejected = record_rejected

    @classmethod
    def from_kafka(cls, error: KafkaError) -> PublishError:
        return cls(error.name().lower(), str(error), error.code() in RECORD_REJECTED_CODES)


def produce_timestamp(timestamp_ms: int, now_ms: int) -> int:
    """The record timestamp to produce with: the record's own, but never older than MAX_RECORD_AGE_MS."""
    return max(timestamp_ms, now_ms - MAX_RECORD_AGE_MS)


def topic_limit_bytes(settings: KafkaSettings) -> int:
    """The producer's message.max.bytes and the max.message.bytes of the topics the bridge creates."""
    return settings.max_record_bytes + PROTOCOL_OVERHEAD_BYTES


@dataclass(init=False)
class Delivered:
    """Where the broker wrote a record; one is built per acknowledged record. Immutable: a dataclass with a
    hand-written __init__ and Final fields, native when compiled (see `bridge.events.model`)."""

    topic: Final[str]
    partition: Final[int]
    offset: Final[int]

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    """What every Kafka client of the bridge connects (and authenticates) with. Configuration refuses
    client properties that the bridge owns (BRIDGE_OWNED_CLIENT_PROPERTIES); the bridge's values are set
    last anyway, so no path around that check can point a client elsewhere."""
    return {**settings.client_properties, "bootstrap.servers": settings.bootstrap_servers}


_Client = TypeVar("_Client")


def new_client(
    make: Callable[[dict[str, Any]], _Client], config: dict[str, Any], settings: KafkaSettings
) -> _Client:
    """`make(config)`, a librdkafka client (Producer, Consumer, AdminClient) configured from `settings`.
    librdkafka checks the properties only here: one it does not know or a value it does not take
    (kafka.client_properties is passed on as written) is a configuration error naming the setting, not a
    Kafka failure."""
    try:
        return make(config)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if not isinstance(error, KafkaError) or error.code() != KafkaError._INVALID_ARG:
            raise
        raise refused_property(settings, error.str()) from None


#: Where librdkafka's refusals quote the value (`Invalid value "..." for configuration property "x"`,
#: `Configuration property "x" value 1e+08 is outside allowed range`): a secret's value must not reach a
#: message, and no value helps, the variable or key does.
LIBRDKAFKA_VALUE = re.compile(r'(?<=Invalid value) ".*"(?= for)|(?<= value) \S+(?= is outside)')


def refused_property(settings: KafkaSettings, refusal: str) -> ConfigError:
    """librdkafka's refusal of a client property as a configuration error naming where it was set (when
    librdkafka names it as it was given, not by an alias), without any property's value."""
    quoted = re.findall(r'"([^"]*)"', refusal)
    key = quoted[-1] if quoted and quoted[-1] in settings.client_properties else None
    detail = LIBRDKAFKA_VALUE.sub("", refusal).strip()
    secrets = [
        value
        for name, value in settings.client_properties.items()
        if value and secret_property(name, set_in_environment(settings, name))
    ]
    if any(value in detail for value in secrets):  # a refusal worded otherwise: none of it is shown
        detail = "librdkafka refused a property or its value (its message is not shown: it holds a secret)"
    where = (
        settings.sources.name(f"kafka.client_properties.{key}")
        if key is not None
        else f"kafka.client_properties (or {KAFKA_CLIENT_ENV_PREFIX}*)"
    )
    return ConfigError(
        f"{where}: {detail}; correct or remove that property (librdkafka's CONFIGURATION.md lists the "
        "properties and their values)"
    )


def admin_client(settings: KafkaSettings) -> AdminClient:
    """An admin client that connects (and authenticates) the way the producers do. Its log lines go through
    logging as theirs do (JSON in the bridge's log): without a logger librdkafka writes them raw to stderr
    (at start-up, "Purging 1 unserved events from background queue" among the JSON lines)."""
    return new_client(
        AdminClient, {**client_config(settings), "logger": logging.getLogger("bridge.kafka.admin")}, settings
    )


@dataclass(frozen=True, slots=True)
class TopicLimits:
    """What a topic's configuration means for the bridge's records."""

    max_message_bytes: int
    #: -1: records are never deleted for their age.
    retention_ms: int


def size_problem(topic: str, limit: TopicLimits, settings: KafkaSettings, rejected_file: str) -> str | None:
    """Why `topic` cannot take the largest record the bridge may produce, and the fix; None when it can.
    Not fatal (IDaaS events are a few KiB): a record too large waits in `rejected_file`."""
    needed = topic_limit_bytes(settings)
    largest = limit.max_message_bytes
    if largest >= needed:
        return None
    fix = f"Raise the topic's max.message.bytes to {needed}"
    if largest - PROTOCOL_OVERHEAD_BYTES >= MIN_RECORD_BYTES:
        fix += f", or lower kafka.max_record_bytes to {largest - PROTOCOL_OVERHEAD_BYTES} or less"
    return (
        f"topic {topic} takes records of at most {largest} bytes (max.message.bytes) but the bridge "
        f"may produce up to {needed} (kafka.max_record_bytes + {PROTOCOL_OVERHEAD_BYTES}); larger "
        f"ones would wait in {rejected_file}. {fix}"
    )


def retention_problem(topic: str, limit: TopicLimits) -> str | None:
    """Records may be stamped up to MAX_RECORD_AGE_MS in the past; with a retention shorter than twice that,
    Kafka could delete them before a consumer that fell behind reads them. None when long enough."""
    wanted = 2 * MAX_RECORD_AGE_MS
    if limit.retention_ms < 0 or limit.retention_ms >= wanted:
        return None
    return (
        f"topic {topic} keeps records for {limit.retention_ms / 3_600_000:g} h (retention.ms) but the "
        f"bridge stamps records with their event time, up to {MAX_RECORD_AGE_MS // 3_600_000} h in the "
        f"past: a late event could expire before your SIEM reads it. Raise retention.ms to {wanted} or more"
    )


#: Below this many replicas (or the cluster's broker count, if smaller) a broker's loss can lose events.
WANTED_REPLICAS: Final = 3


def replication_problem(topic: str, replicas: int, brokers: int) -> str | None:
    """acks=all only protects an event on as many brokers as the topic has replicas."""
    wanted = min(WANTED_REPLICAS, brokers)
    if replicas >= wanted:
        return None
    return (
        f"topic {topic} has {replicas} replica(s) on a cluster of {brokers} brokers: losing one broker can "
        f"lose acknowledged events. Recreate it with replication factor {wanted}"
    )


def topic_limits(
    settings: KafkaSettings, timeout: float = METADATA_TIMEOUT_SECONDS, names: Sequence[str] | None = None
) -> dict[str, TopicLimits]:
    """max.message.bytes and retention.ms of `names` (default: every configured topic). Blocking; raises
    KafkaException when the brokers do not answer."""
    if names is None:
        names = sorted({topic.name for topic in settings.topics.values()})
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    # The admin client must outlive the futures (destroying it fails them). An argument lives until the call
    # returns, where a local would not: compiled code frees a local after its last use, not at the return.
    return _described_limits(admin_client(settings), resources, timeout)


def _described_limits(
    admin: AdminClient, resources: list[ConfigResource], timeout: float
) -> dict[str, TopicLimits]:
    futures = admin.describe_configs(resources, request_timeout=timeout)
    limits = {}
    for resource, future in futures.items():
        entries = future.result(timeout=timeout)
        limits[resource.name] = TopicLimits(
            int(entries["max.message.bytes"].value), int(entries["retention.ms"].value)
        )
    return limits


def producer_config(settings: KafkaSettings, message_timeout: float) -> dict[str, Any]:
    """`message_timeout` bounds how long librdkafka keeps retrying one message before reporting failure."""
    config: dict[str, Any] = {**DEFAULT_PRODUCER_CONFIG, **client_config(settings)}
    config.update(REQUIRED_PRODUCER_CONFIG)
    config["message.timeout.ms"] = int(message_timeout * 1000)
    config["message.max.bytes"] = topic_limit_bytes(settings)
    config["statistics.interval.ms"] = int(settings.statistics_interval_seconds * 1000)
    return config


def _any_broker_up(stats: dict[str, Any]) -> bool:
    """Whether librdkafka statistics show a working connection to at least one broker."""
    return any(broker.get("state") == "UP" for broker in stats.get("brokers", {}).values())


def _record_statistics(stats: dict[str, Any]) -> None:
    """librdkafka statistics → producer gauges (queue depth, per-broker round-trip time)."""
    metrics.KAFKA_QUEUE_MESSAGES.set(stats.get("msg_cnt", 0))
    metrics.KAFKA_QUEUE_BYTES.set(stats.get("msg_size", 0))
    for broker in stats.get("brokers", {}).values():
        if broker.get("nodeid", -1) >= 0:
            rtt = broker.get("rtt", {}).get("avg", 0)
            metrics.KAFKA_BROKER_RTT.labels(broker=broker.get("nodename", "?")).set(rtt / 1_000_000)


def _fail(future: asyncio.Future[Delivered], error: PublishError) -> None:
    """Fail a publish future with its failure marked as seen. Whoever waits for it still gets `error` (and
    it is counted in KAFKA_MESSAGES); a future nobody waits for any more (its ack deadline passed, the spool
    took the record) would otherwise log "Future exception was never retrieved" at ERROR for every such
    timeout. Marked here, where a future fails, rather than by a done callback on every future, which the
    loop would schedule once per acknowledged record too. A future its caller cancelled before the end of
    its turn (`KafkaPublisher._hand_over`) has nobody to tell."""
    if future.done():
        return
    future.set_exception(error)
    future.exception()


@dataclass(init=False)
class _TopicMetrics:
    """The values `_settle` updates for one topic, looked up once per publisher: `labels()` costs a few
    hundred ns even when metrics.py remembers the child (its arguments become a dict, then a tuple key to
    hash), and the values are updated without the wrappers' Python frames (`metrics.value_of`), twice per
    record. The publishers are made after `metrics.use_worker_files` remade the values, so these are the
    ones /metrics reads."""

    delivered: Final[MetricValue]
    failed: Final[MetricValue]
    duration: Final[HistogramValues]

    def __init__(self, delivered: MetricValue, failed: MetricValue, duration: HistogramValues) -> None:
        self.delivered = delivered
        self.failed = failed
        self.duration = duration

    @classmethod
    def of(cls, topic: str) -> _TopicMetrics:
        return cls(
            metrics.value_of(metrics.KAFKA_MESSAGES.labels(topic=topic, result="delivered")),
            metrics.value_of(metrics.KAFKA_MESSAGES.labels(topic=topic, result="failed")),
            metrics.histogram_values(metrics.PUBLISH_DURATION.labels(topic=topic)),
        )


class _AckDeadline:
    """Fails the publish futures that wait `seconds` and have no report by then: one queue, one timer.

    Every record it watches waits the same time, so they fall due in the order they were produced: the
    queue is sorted by construction and one timer, armed for the oldest record still waiting, serves them
    all, where a timer per record costs a timer armed and cancelled for every delivery. The queue only
    holds a record until its future is done (`forget_settled`) or it fails at its deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self._loop = loop
        self._seconds = seconds
        #: (due, future, topic), oldest first.
        self._waiting: deque[tuple[float, asyncio.Future[Delivered], str]] = deque()
        #: The loop time the armed timer is for; None while no timer is armed.
        self._armed_for: float | None = None

    def watch(self, future: asyncio.Future[Delivered], topic: str) -> None:
        due = self._loop.time() + self._seconds
        self._waiting.append((due, future, topic))
        if self._armed_for is None:
            self._arm(due)

    def forget_settled(self) -> None:
        """Drop the oldest records whose futures are done, so that acknowledged ones leave the queue soon
        after their report (most records, since reports mostly come in produce order) and die young."""
        waiting = self._waiting
        while waiting and waiting[0][1].done():
            waiting.popleft()

    def _arm(self, due: float) -> None:
        self._armed_for = due
        self._loop.call_at(due, self._expire)

    def _expire(self) -> None:
        # The loop may run a timer a little before the time it was armed for by its own clock (uvloop
        # rounds delays to milliseconds): whatever was due by then is due now.
        assert self._armed_for is not None
        now = max(self._loop.time(), self._armed_for)
        self._armed_for = None
        waiting = self._waiting
        while waiting:
            due, future, topic = waiting[0]
            if not future.done():
                if due > now:
                    self._arm(due)
                    return
                metrics.KAFKA_MESSAGES.labels(topic=topic, result="timeout").inc()
                _fail(
                    future,
                    PublishError("ack_timeout", f"no acknowledgement from Kafka within {self._seconds} s"),
                )
            waiting.popleft()


class KafkaPublisher:
    """One librdkafka producer: the only way the bridge produces, so every record gets the timestamp floor
    and the durability settings. The receiver's gives up on a message at the ack deadline (the spool takes
    over, so nothing is published twice); the drainer's and the replay's keep retrying for longer.

    The publisher that exports statistics (one per process: the gauges have no producer label) keeps `up`
    and idaas_bridge_kafka_up current from librdkafka's statistics and error callbacks, so readiness and
    the shutdown's drain read a cached state and never wait for Kafka; it also feeds the producer gauges.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        message_timeout: float,
        name: str,
        export_statistics: bool = False,
        *,
        make_producer: Callable[[dict[str, Any]], Producer] = Producer,
        topic_metrics: Callable[[str], _TopicMetrics] = _TopicMetrics.of,
    ) -> None:
        """`make_producer` makes the librdkafka client from its configuration (the callbacks included), a
        confluent_kafka.Producer or a subclass of it; `topic_metrics` finds the values a topic's reports
        update. The bridge passes neither; a test passes its own to watch or fail what the publisher calls
        (this class is compiled: a method of an instance, or a function of this module as its code calls
        it, cannot be replaced)."""
        config = producer_config(settings, message_timeout)
        config["client.id"] = f"{config['client.id']}-{name}"
        # librdkafka's own log lines go through logging, so they come out as JSON like everything else.
        config["logger"] = logging.getLogger(f"bridge.kafka.{name}")
        self._export_statistics = export_statistics
        if export_statistics:
            config["stats_cb"] = self._on_statistics
        config["error_cb"] = self._on_error
        self._producer = new_client(make_producer, config, settings)
        #: The producer's librdkafka handle, checked here so that a confluent-kafka whose C struct moved it
        #: is a start-up error (main_queue.MainQueueUnavailable).
        self._rk = main_queue.handle(self._producer, config["client.id"])
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The event loop's thread: reports served there settle at once, others go through `_reports`.
        self._loop_thread: int | None = None
        #: The pipe librdkafka writes to when its main queue has events (`main_queue.watch`); the loop
        #: watches the read end. None before start() and after close().
        self._wake_pipe: tuple[int, int] | None = None
        #: Reports served on another thread (close()'s flush) that the event loop has not settled yet.
        self._reports: deque[_Report] = deque()
        #: Whether the event loop has been woken for the queued reports and not yet started settling them.
        #: It is cleared before the queue is emptied, so a report queued meanwhile is either settled in that
        #: turn or wakes the loop again: none waits for a later record's wake-up.
        self._wake_pending = False
        #: Messages produce() queued in this turn of the event loop, handed to librdkafka at its end.
        self._turn_records: deque[_TurnRecord] = deque()
        self._topic_metrics: dict[str, _TopicMetrics] = {}
        self._metrics_of = topic_metrics
        #: publish()'s ack deadlines, one per distinct wait (in practice one per publisher).
        self._ack_deadlines: dict[float, _AckDeadline] = {}
        #: Whether a broker connection was up at the last statistics report (tracked only with
        #: export_statistics).
        self.up = False
        if export_statistics:
            metrics.KAFKA_UP.set(0)

    def start(self) -> None:
        """Serve librdkafka's events on the running loop from now on."""
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_pipe = read_end, write_end
        main_queue.watch(self._rk, write_end)
        loop.add_reader(read_end, self._serve)
        # librdkafka writes when an event finds the queue empty: serve what was queued before the watch.
        loop.call_soon(self._serve)

    def close(self, timeout: float) -> int:
        """Flush for up to `timeout` seconds; returns how many messages were still not delivered. May run
        on another thread than the loop's (the shutdown flushes both publishers at once, app.py)."""
        deadline = time.monotonic() + timeout
        self._hand_over_at_close(timeout)
        # Any message the loop did not take from the closing turn in time is not delivered either.
        remaining = int(self._producer.flush(max(0.0, deadline - time.monotonic()))) + len(self._turn_records)
        if self._wake_pipe is not None:
            main_queue.unwatch(self._rk)
            loop = self._loop
            assert loop is not None
            if threading.get_ident() == self._loop_thread:
                self._close_wake_pipe()
            else:
                try:
                    loop.call_soon_threadsafe(self._close_wake_pipe)
                except RuntimeError:  # the loop is closed: nothing watches the pipe any more
                    self._close_wake_pipe()
        return remaining

    def _hand_over_at_close(self, timeout: float) -> None:
        """Hand librdkafka the messages produced in the turn that closes, so that the flush counts them too.
        On the loop's thread (or with no loop running) here and now; from another thread on the loop,
        waiting up to `timeout` for it: the loop may be handing the same turn over at that moment (the
        shutdown starts the flush in a thread in the turn its last records were produced in), and two
        threads taking from one deque would send a partition's records out of order and settle futures off
        the loop (tests/integration/test_kafka_publisher_reports.py)."""
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread or not loop.is_running():
            self._hand_over()
            return
        handed_over: concurrent.futures.Future[None] = concurrent.futures.Future()

        def hand_over() -> None:
            try:
                self._hand_over()
            finally:
                handed_over.set_result(None)

        try:
            loop.call_soon_threadsafe(hand_over)
        except RuntimeError:  # the loop closed since: nothing hands over there any more
            self._hand_over()
            return
        # Not handed over by then (a loop stuck elsewhere): the flush goes on without those messages.
        with contextlib.suppress(concurrent.futures.TimeoutError):
            handed_over.result(timeout)

    def _close_wake_pipe(self) -> None:
        """Runs on the loop (or once it is closed), after `main_queue.unwatch`: librdkafka writes no more."""
        if self._wake_pipe is None:
            return
        read_end, write_end = self._wake_pipe
        self._wake_pipe = None
        loop = self._loop
        assert loop is not None
        if not loop.is_closed():
            # Through Any: uvloop's remove_reader answers None where typeshed's says bool, and compiled code
            # would raise TypeError for the bool it was promised (the answer is not needed).
            cast(Any, loop).remove_reader(read_end)
        os.close(read_end)
        os.close(write_end)

    def _serve(self) -> None:
        """Runs on the event loop when librdkafka has written to the pipe: serve every event queued so far
        (the callbacks run here, on the loop's thread). The pipe is emptied first, so an event queued
        after that either is served by this poll or writes to the pipe again. An exception from a callback
        stops the serving where it was: logged, and librdkafka puts the events not served back in the queue
        and writes to the pipe again (tests/integration/test_kafka_publisher_reports.py)."""
        pipe = self._wake_pipe
        if pipe is not None:  # None: start()'s first turn came after close()
            with contextlib.suppress(BlockingIOError):  # start()'s first turn: nothing written yet
                os.read(pipe[0], 512)
        try:
            self._producer.poll(0)
        except Exception:
            log.exception("a kafka callback failed; polling goes on")
        for ack_deadline in self._ack_deadlines.values():
            ack_deadline.forget_settled()

    def _set_up(self, up: bool) -> None:
        if self._export_statistics:
            self.up = up
            metrics.KAFKA_UP.set(1 if up else 0)

    def _on_statistics(self, raw: str) -> None:
        stats = orjson.loads(raw)
        _record_statistics(stats)
        self._set_up(_any_broker_up(stats))

    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._set_up(False)
        log.warning("kafka client error", extra={"kafka_error": str(error), "fatal": error.fatal()})

    def _report(self, report: _Report) -> None:
        """Runs inside `poll()` or `flush()`: settle the report, on the loop's thread at once, from any other
        thread by handing it to the loop."""
        if threading.get_ident() == self._loop_thread:
            self._settle(*report)
        else:
            self._queue_report(report)

    def _queue_report(self, report: _Report) -> None:
        """Hand one report to the event loop from another thread."""
        self._reports.append(report)
        if not self._wake_pending:
            self._wake_pending = True
            loop = self._loop
            assert loop is not None
            loop.call_soon_threadsafe(self._settle_reports)

    def _settle_reports(self) -> None:
        """Runs on the event loop: settle every report queued so far. A report whose settling raises is
        logged and the others are settled all the same: no later report may come to wake the loop for them."""
        self._wake_pending = False
        reports = self._reports
        while reports:
            try:
                self._settle(*reports.popleft())
            except Exception:
                log.exception("settling a kafka delivery report failed; the others are settled")
        for ack_deadline in self._ack_deadlines.values():
            ack_deadline.forget_settled()

    def _settle(
        self,
        future: asyncio.Future[Delivered],
        topic: str,
        started: float,
        error: KafkaError | None,
        message: Message,
    ) -> None:
        """Runs on the event loop: resolve the waiting request, then count the result. The request first:
        should counting raise, the request still has its answer."""
        if error is None:
            if not future.done():
                partition, offset = message.partition(), message.offset()
                future.set_result(
                    Delivered(topic, -1 if partition is None else partition, -1 if offset is None else offset)
                )
        elif not future.done():
            _fail(future, PublishError.from_kafka(error))
        counts = self._topic_metrics.get(topic)
        if counts is None:
            counts = self._topic_metrics[topic] = self._metrics_of(topic)
        if error is None:
            counts.delivered.inc(1)
            counts.duration.observe(time.perf_counter() - started)
        else:
            counts.failed.inc(1)

    def produce(
        self, topic: str, key: bytes, value: bytes, headers: Headers, timestamp_ms: int
    ) -> asyncio.Future[Delivered]:
        """Queue one message; the future resolves when the broker acknowledges it (acks=all) or fails.

        The message reaches librdkafka at the end of this turn of the event loop, with every other message
        queued in the turn (`_hand_over`), in the order they were queued."""
        loop = self._loop
        assert loop is not None, "KafkaPublisher.start() was not called"
        future: asyncio.Future[Delivered] = loop.create_future()
        if not self._turn_records:
            loop.call_soon(self._hand_over)
        self._turn_records.append((future, topic, key, value, headers, timestamp_ms, time.perf_counter()))
        return future

    def _hand_over(self) -> None:
        """Give librdkafka the messages queued in a turn of the event loop, back to back.

        librdkafka wakes its broker thread (a write to a pipe, and the thread's whole serve cycle: a few
        system calls, a context switch) for the first message it queues after the thread last looked at
        the partition. With linger.ms 0 and a produce request in flight, that is every message handed over
        while the request is out; handed over together, the messages of one turn cost one wake-up
        (docs/benchmarks.md, fifth round)."""
        records = self._turn_records
        now_ms = int(time.time() * 1000)
        while records:
            future, topic, key, value, headers, timestamp_ms, started = records.popleft()
            self._produce_now(
                future, topic, key, value, headers, produce_timestamp(timestamp_ms, now_ms), started
            )

    def _produce_now(
        self,
        future: asyncio.Future[Delivered],
        topic: str,
        key: bytes,
        value: bytes,
        headers: Headers,
        timestamp_ms: int,
        started: float,
    ) -> None:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            self._report((future, topic, started, error, message))

        try:
            # Positional, in the order of the C function's keyword list (the documented order leaves out
            # `callback`): it looks each keyword up by a string made afresh per call, which cost more than
            # a third of produce() (tests/integration/test_kafka_publisher.py reads the record back).
            self._producer.produce(
                topic,
                value,
                key,
                -1,  # partition: librdkafka's partitioner chooses, by key
                on_delivery,
                None,  # callback: on_delivery's alias
                timestamp_ms,
                headers,  # type: ignore[arg-type]  # the stub's list of str | bytes | None: lists are invariant
            )
        except Exception as exc:  # caught whatever it is: raised here it would stop the turn's hand-over
            metrics.KAFKA_MESSAGES.labels(topic=topic, result="failed").inc()
            if isinstance(exc, BufferError):
                _fail(future, PublishError("queue_full", "the producer queue is full"))
            elif isinstance(exc, KafkaException):
                _fail(future, PublishError.from_kafka(exc.args[0]))
            elif not future.done():  # as in `_fail`
                # An argument the client library does not take (a type, a value out of range): a bug,
                # raised to whoever waits for it as produce() raised it before the hand-over, and left
                # unmarked so that it is logged if nobody does.
                future.set_exception(exc)

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Headers, timestamp_ms: int, deadline: float
    ) -> Delivered:
        """Produce and wait up to `deadline` seconds for the acknowledgement, then fail with ack_timeout. A
        report arriving after the deadline is still counted by `_settle`."""
        future = self.produce(topic, key, value, headers, timestamp_ms)
        ack_deadline = self._ack_deadlines.get(deadline)
        if ack_deadline is None:
            ack_deadline = self._ack_deadlines[deadline] = _AckDeadline(future.get_loop(), deadline)
        ack_deadline.watch(future, topic)
        return await future

    def list_topics_blocking(self, timeout: float = METADATA_TIMEOUT_SECONDS) -> set[str]:
        """Topic names from broker metadata; raises KafkaException when no broker answers. Blocking. The
        answer (or its absence) also seeds `up` until the first statistics report."""
        try:
            metadata = self._producer.list_topics(timeout=timeout)
        except KafkaException:
            self._set_up(False)
            raise
        self._set_up(True)
        return set(metadata.topics)
