"""Every Prometheus metric the bridge exports, defined in one place.

Names follow prometheus/client_python conventions: the `idaas_bridge_` prefix, base units (seconds, bytes),
`_total` on counters. Labels are bounded: webhook (≤ 20 per tenant), event_type (the catalog plus
"unknown"), topic, status, reason, code, resource (a fixed set). Never a per-user or per-delivery label, and
never text taken from a payload.

With `server.workers` above 1 every worker counts in its own files and the parent's /metrics adds them up
under the same names (prometheus-client's multiprocess mode, `use_worker_files`). Each gauge's
`multiprocess_mode` says how: `livesum` for what each worker holds (spool, queues, dedup entries), `livemax`
for an age or a round-trip time, `livemin` for Kafka up (0 while any worker's producer is cut off),
`max` for a last-success time, `mostrecent` for a value that is one fact for the whole pod (the failure
streak, which the workers count together, and the Admin API's view, read by one worker). A dead worker's
`live*` values go with it; its counters stay in the sums.

Every value is a `MetricValue` (bridge/metric_value.py, compiled: an update is a native call, atomic under
the GIL without a lock, though the Kafka flush thread and the spool's executor update metrics too). In
worker mode an update changes the process's memory only, as with one process, and `flush_worker_files`
writes the values that changed to the process's files: every FLUSH_SECONDS (`flush_periodically`, on a
worker's event loop), when a worker ends, and in the serving process before each scrape.
prometheus-client's own multiprocess value writes its mmap'd file on every update under one lock for the
process, 0.5 to 0.6 µs more per update and about ten updates per delivery. So /metrics lags a worker by at
most FLUSH_SECONDS, and a worker killed hard (SIGKILL, OOM) loses at most its last FLUSH_SECONDS of counts;
a `mostrecent` gauge's value keeps the time it was set, not the time it was written, so the parent still
picks the value set last.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Final, Self, cast

import prometheus_client
from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from bridge.metric_value import HistogramValues, MetricValue

log = logging.getLogger(__name__)

#: Every metric made from here on keeps its values in a MetricValue (with worker files:
#: `use_worker_files`). prometheus-client chose its value class at import; the bridge's metrics below are
#: the first any process of the bridge makes.
values.ValueClass = MetricValue


class _RememberedChildren:
    """`labels()` as one dict look-up once a label combination has been seen.

    prometheus-client checks, sorts and stringifies the label names on every `labels()` call, a few µs
    each; the values are bounded (see above), so remembering the children costs no more memory than the
    children themselves. Nothing in the bridge removes a child, so a remembered one never goes stale. The
    series a delivery updates are looked up once by their callers (`value_of`); the rest (a rejection, a
    sign-in's outcome, a hang-up) pass the values positionally where they can, in the order of the metric's
    label names: their tuple is the key as it comes (about 0.3 µs less per call than keywords).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Keyed by the positional values' tuple, or by (values, named items) for a call with keywords: the
        #: two kinds of key never meet (label values are strings), and both find the library's one child.
        self._remembered: dict[tuple[Any, ...], Self] = {}

    def labels(self, *values: Any, **named: Any) -> Self:
        key = (values, tuple(named.items())) if named else values
        child = self._remembered.get(key)
        if child is None:
            created: Self = super().labels(*values, **named)  # type: ignore[misc]
            child = self._remembered[key] = created
        return child


class Counter(_RememberedChildren, prometheus_client.Counter):
    def inc(self, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        """The library's `inc` without its per-call check that this is a child, which the missing `_value`
        of a labelled parent makes here (the library then raises its own error)."""
        try:
            value = self._value
        except AttributeError:
            value = None
        if value is None or amount < 0 or exemplar:
            super().inc(amount, exemplar)
        else:
            value.inc(amount)


class Gauge(_RememberedChildren, prometheus_client.Gauge):
    def set(self, value: float) -> None:
        """The library's `set` without its per-call check that this is a child (as Counter.inc)."""
        try:
            current = self._value
        except AttributeError:
            super().set(value)
            return
        if self._is_most_recent:
            current.set(float(value), timestamp=time.time())
        else:
            current.set(float(value))


class Histogram(_RememberedChildren, prometheus_client.Histogram):
    def _metric_init(self) -> None:
        super()._metric_init()
        self._native_values = HistogramValues(self._upper_bounds, self._buckets, self._sum)

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        """The library's `observe` in native code (`HistogramValues.observe`), without its per-call check that
        this is a child (as Counter.inc)."""
        try:
            native = self._native_values
        except AttributeError:
            native = None
        if native is None or exemplar:
            super().observe(amount, exemplar)
        else:
            native.observe(amount)


def value_of(series: Counter | Gauge) -> MetricValue:
    """The value of one series (a metric without labels, or the child `labels()` returned), for a caller that
    updates it per delivery: an `inc` or `set` on it is the wrapper's without the wrapper's Python frame.

    Only for a gauge that keeps no time: a `mostrecent` gauge's `set` must go through `Gauge.set`, which
    stamps it. Look it up after `use_worker_files` (which makes every value again): the receiver, the
    publishers and the dedup cache are made after it."""
    if isinstance(series, Gauge) and series._is_most_recent:
        raise ValueError(f"{series._name} is a mostrecent gauge: set it with Gauge.set, which stamps it")
    return cast(MetricValue, series._value)


def histogram_values(series: Histogram) -> HistogramValues:
    """A histogram series' values, for a caller that observes per delivery (as `value_of`)."""
    return series._native_values


#: Buckets around IDaaS's 3 s deadline: fine below 100 ms where the bridge should live, then up to 3 s.
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    5.0,
)

# --- receiver ---------------------------------------------------------------------------------------
DELIVERIES = Counter(
    "idaas_bridge_deliveries_total",
    "Authenticated deliveries by outcome: published, spooled, duplicate, deadletter, unavailable.",
    ["webhook", "event_type", "status"],
)
RESPONSES = Counter(
    "idaas_bridge_http_responses_total",
    "Answers to webhook POSTs by HTTP status code, as IDaaS counts them.",
    ["webhook", "code"],
)
AUTH_FAILURES = Counter(
    "idaas_bridge_auth_failures_total",
    "Deliveries rejected with 401, by the reason signature verification failed.",
    ["webhook", "reason"],
)
REQUEST_DURATION = Histogram(
    "idaas_bridge_request_duration_seconds",
    "Time from request start to the answer, for webhook POSTs (IDaaS gives up at 3 s).",
    ["webhook"],
    buckets=LATENCY_BUCKETS,
)
AUTHENTICATIONS = Counter(
    "idaas_bridge_authentications_total",
    "IDaaS sign-in events seen, by outcome and IDaaS resource: Administration Portal, User Portal, other "
    "(any other resourceName) or none (no resourceName).",
    ["outcome", "resource"],
)
#: The `resource` values IDaaS documents; any other resourceName is "other", so payload text never becomes
#: a label value (each would be a new series kept for the life of the process).
KNOWN_RESOURCES: Final = frozenset({"Administration Portal", "User Portal"})


def resource_label(resource_name: str | None) -> str:
    if not resource_name:
        return "none"
    return resource_name if resource_name in KNOWN_RESOURCES else "other"


CLIENT_DISCONNECTS = Counter(
    "idaas_bridge_client_disconnects_total",
    "Webhook requests whose client hung up before the whole body arrived (nothing stored, no answer sent).",
    ["webhook"],
)
CONNECTIONS_EVICTED = Counter(
    "idaas_bridge_connections_evicted_total",
    "Connections closed because their listener reached its connection limit (server.max_connections on "
    "the webhook listener): the one idle longest, never one with a request in progress.",
    ["listener"],
)
DEADLETTERS = Counter(
    "idaas_bridge_deadletters_total",
    "Authenticated deliveries sent to the dead-letter topic: not a valid envelope, or a record too large.",
    ["webhook", "reason"],
)
DEDUP_ENTRIES = Gauge(
    "idaas_bridge_dedup_cache_entries",
    "Delivery ids remembered for duplicate suppression.",
    multiprocess_mode="livesum",
)

# --- auto-disable guard -----------------------------------------------------------------------------
FAILURE_STREAK = Gauge(
    "idaas_bridge_failure_streak",
    "Consecutive failed answers per webhook to requests carrying an IDaaS-shaped signature (non-2xx or "
    "slower than 3 s). It counts attempts, IDaaS counts deliveries (up to 3 attempts each), so it runs "
    "ahead of IDaaS's count; IDaaS disables the webhook at 100. Unsigned junk does not count.",
    ["webhook"],
    multiprocess_mode="mostrecent",
)
LAST_SUCCESS = Gauge(
    "idaas_bridge_last_success_timestamp_seconds",
    "Unix time of the last 2xx answer per webhook.",
    ["webhook"],
    multiprocess_mode="max",
)

# --- Kafka publishing -------------------------------------------------------------------------------
#: Every value of KAFKA_MESSAGES's `result` label, pre-created per topic so "no failures" reads as 0.
KAFKA_RESULTS: Final = ("delivered", "failed", "timeout")
KAFKA_MESSAGES = Counter(
    "idaas_bridge_kafka_messages_total",
    "Messages handed to Kafka by delivery result: delivered, failed, timeout.",
    ["topic", "result"],
)
PUBLISH_DURATION = Histogram(
    "idaas_bridge_kafka_publish_duration_seconds",
    "Time from produce() to the broker's acknowledgement (acks=all).",
    ["topic"],
    buckets=LATENCY_BUCKETS,
)
KAFKA_QUEUE_MESSAGES = Gauge(
    "idaas_bridge_kafka_producer_queue_messages",
    "Messages waiting in the librdkafka producer queue (librdkafka statistics msg_cnt).",
    multiprocess_mode="livesum",
)
KAFKA_QUEUE_BYTES = Gauge(
    "idaas_bridge_kafka_producer_queue_bytes",
    "Bytes waiting in the librdkafka producer queue (librdkafka statistics msg_size).",
    multiprocess_mode="livesum",
)
KAFKA_BROKER_RTT = Gauge(
    "idaas_bridge_kafka_broker_rtt_seconds",
    "Average broker round-trip time over the last statistics interval (librdkafka rtt.avg).",
    ["broker"],
    multiprocess_mode="livemax",
)
KAFKA_UP = Gauge(
    "idaas_bridge_kafka_up",
    "1 while the receiver's producer holds a connection to a Kafka broker (from librdkafka's statistics "
    "every kafka.statistics_interval_seconds; 0 as soon as librdkafka reports all brokers down).",
    multiprocess_mode="livemin",
)

# --- shutdown ---------------------------------------------------------------------------------------
SHUTDOWN_LEFT = Counter(
    "idaas_bridge_shutdown_left",
    "What a shutdown left undone when its budget (server.shutdown_grace_seconds) or Kafka ran out: "
    "requests cut short, spooled records (drained by the next start), producer messages not acknowledged.",
    ["what"],
)
#: Every value of SHUTDOWN_LEFT's `what` label, exported as 0 from the start so "nothing left" reads as 0.
SHUTDOWN_LEFT_KINDS: Final = ("requests", "spooled_records", "unacknowledged_messages")


# --- durable spool ----------------------------------------------------------------------------------
SPOOL_BYTES = Gauge(
    "idaas_bridge_spool_bytes", "Bytes of records held in the local spool.", multiprocess_mode="livesum"
)
SPOOL_RECORDS = Gauge(
    "idaas_bridge_spool_records",
    "Records in the local spool not yet confirmed by Kafka.",
    multiprocess_mode="livesum",
)
SPOOL_CAPACITY = Gauge(
    "idaas_bridge_spool_max_bytes",
    "The configured spool size limit (spool.max_bytes).",
    multiprocess_mode="livesum",
)
SPOOL_OLDEST_AGE = Gauge(
    "idaas_bridge_spool_oldest_record_age_seconds",
    "Age of the oldest record still waiting in the spool; 0 when the spool is empty.",
    multiprocess_mode="livemax",
)
SPOOL_APPENDS = Counter(
    "idaas_bridge_spool_appends_total", "Records written (and fsync'd) to the spool.", ["topic"]
)
SPOOL_DRAINED = Counter(
    "idaas_bridge_spool_drained_total", "Spooled records confirmed by Kafka and released.", ["topic"]
)
SPOOL_REJECTED = Counter(
    "idaas_bridge_spool_rejected_total",
    "Spooled records Kafka refused for good (too large for the topic, timestamp out of range), moved to the "
    "spool's rejected.jsonl (Kafka's reason is in the log and in `idaas-bridge rejected`).",
    ["topic"],
)
REJECTED_RECORDS = Gauge(
    "idaas_bridge_rejected_records",
    "Records in the spool's rejected.jsonl waiting for an operator: fix the topic, then `idaas-bridge "
    "rejected --replay`.",
    multiprocess_mode="livemax",
)
SPOOL_TORN_RECORDS = Counter(
    "idaas_bridge_spool_torn_records_total",
    "Spool records whose length, checksum or decoding did not check out (a crash mid-write, a zero-filled "
    "tail, a corrupted disk); each one ends the readable part of its segment, the rest is quarantined.",
)
SPOOL_QUARANTINED_BYTES = Counter(
    "idaas_bridge_spool_quarantined_bytes_total",
    "Bytes of spool segments moved aside into quarantine-*.bin files in the spool directory: the rest of a "
    "segment from its first unreadable record on (see docs/operations.md).",
)
SPOOL_WRITE_ERRORS = Counter(
    "idaas_bridge_spool_write_errors_total", "Spool appends that failed (disk full, I/O error)."
)
SPOOL_FSYNC_DURATION = Histogram(
    "idaas_bridge_spool_fsync_duration_seconds",
    "Duration of one group-commit fsync of the spool.",
    buckets=LATENCY_BUCKETS,
)

# --- IDaaS Administration API -----------------------------------------------------------------------
ADMIN_API_REQUESTS = Counter(
    "idaas_bridge_admin_api_requests_total",
    "Requests to the IDaaS Administration API by operation and answer: the HTTP status code, or `error` "
    "when none came (timeout, connection refused, TLS failure).",
    ["operation", "code"],
)
WEBHOOK_REGISTERED = Gauge(
    "idaas_bridge_webhook_registered",
    "1 when an IDaaS webhook has this configured webhook's public callback URL, 0 when none has (deleted, "
    "or its URL changed): read through the Admin API.",
    ["webhook"],
    multiprocess_mode="mostrecent",
)
WEBHOOK_ENABLED = Gauge(
    "idaas_bridge_webhook_enabled",
    "1 when IDaaS has the webhook enabled; 0 when it is disabled (auto-disabled after 100 failures, by an "
    "admin, or expired) or not registered at all: IDaaS sends it no events.",
    ["webhook"],
    multiprocess_mode="mostrecent",
)
WEBHOOK_EXPIRED = Gauge(
    "idaas_bridge_webhook_expired",
    "1 when IDaaS reports the webhook past its expiry date.",
    ["webhook"],
    multiprocess_mode="mostrecent",
)
WEBHOOK_EXPIRY = Gauge(
    "idaas_bridge_webhook_expiry_timestamp_seconds",
    "Unix time at which IDaaS expires (and disables) the webhook; 0 when it never expires.",
    ["webhook"],
    multiprocess_mode="mostrecent",
)
WEBHOOK_UNKNOWN_TYPES = Gauge(
    "idaas_bridge_webhook_unknown_event_types",
    "Event types the webhook subscribes to that the bridge's catalog does not know (they go to the "
    "unknown topic); a webhook with no event list gets all types.",
    ["webhook"],
    multiprocess_mode="mostrecent",
)
WEBHOOK_CHECKS = Counter(
    "idaas_bridge_webhook_checks_total",
    "Reads of the webhooks' state through the Admin API, by result: ok, or the failure reason "
    "(unauthorized, forbidden, unavailable, ...).",
    ["result"],
)
WEBHOOK_LAST_CHECK = Gauge(
    "idaas_bridge_webhook_last_check_timestamp_seconds",
    "Unix time of the last successful read of the webhooks' state.",
    multiprocess_mode="max",
)
WEBHOOK_REENABLES = Counter(
    "idaas_bridge_webhook_reenables_total",
    "Guarded re-enable attempts of a webhook IDaaS reported disabled (admin_api.reenable), by result: "
    "reenabled, not_confirmed, test_not_received, unhealthy, rate_limited, expired, already_enabled, "
    "incomplete, failed.",
    ["webhook", "result"],
)
#: Every value of BACKFILL_RUNS's `result` label, exported as 0 per webhook from the start.
BACKFILL_RUN_RESULTS: Final = ("completed", "failed")
BACKFILL_RUNS = Counter(
    "idaas_bridge_backfill_runs_total",
    "Automatic backfills of the gap after a webhook recovered (admin_api.backfill_automatic) or of the "
    "bridge's own downtime before a start (admin_api.backfill_downtime), by result: "
    "completed, or failed (the Admin API or Kafka failed; retried from its checkpoint).",
    ["webhook", "result"],
)
BACKFILL_EVENTS = Counter(
    "idaas_bridge_backfill_events_total",
    "Audit records read by automatic backfills, by webhook type (`unknown` for records no trusted mapping "
    "covers) and result: published, duplicate (its fingerprint was in Kafka already), unmapped, "
    "unsubscribed (a type the webhook does not subscribe to).",
    ["webhook", "event_type", "result"],
)
BACKFILL_GAP = Gauge(
    "idaas_bridge_backfill_gap_seconds",
    "Length of the last gap an automatic backfill was scheduled for, per webhook: from the last delivery "
    "before the webhook went down to its recovery, or from the bridge's last heartbeat before a restart to "
    "the start, widened by admin_api.backfill_margin_seconds on both "
    "sides and capped at admin_api.backfill_max_gap_seconds.",
    ["webhook"],
    multiprocess_mode="mostrecent",
)

# --- workers (server.workers above 1) ---------------------------------------------------------------
WORKER_RESTARTS = Counter(
    "idaas_bridge_worker_restarts_total",
    "Worker processes that ended without being asked and were started again by the serving process "
    "(server.workers above 1); each is logged with its exit status.",
)
WORKERS = Gauge(
    "idaas_bridge_workers",
    "Processes serving the webhook listener now: the workers alive (server.workers above 1), or 1 for a "
    "bridge that runs as one process.",
    multiprocess_mode="max",
)

#: prometheus-client's own variable: where a process in multiprocess mode keeps its values.
MULTIPROCESS_DIRECTORY_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: How often a worker writes its values to its files: how far /metrics may lag a worker, and the counts a
#: worker killed hard takes with it.
FLUSH_SECONDS: Final = 0.5


class WorkerFiles:
    """One process's metric files in worker mode, and its values, which `flush` writes there.

    The files are prometheus-client's (`<kind>_<pid>.db`, MmapedDict), read by its MultiProcessCollector in
    the serving process; only when they are written differs. A forked child counts in files of its own pid
    from the values they hold (none, unless a dead process had the same pid: its counts stay in the sums).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pid = os.getpid()
        #: Guards the files (MmapedDict is not thread-safe) and the list of values; never held while
        #: waiting for anything else.
        self._lock = threading.Lock()
        self._files: dict[str, MmapedDict] = {}
        self._values: list[_FiledValue] = []

    def value_class(
        self,
        typ: str,
        metric_name: str,
        name: str,
        labelnames: Any,
        labelvalues: Any,
        help_text: str,
        multiprocess_mode: str = "",
        **kwargs: Any,
    ) -> MetricValue:
        """prometheus-client's value class for this process's metrics (values.ValueClass): a value that
        starts from what its file holds, and is in the file (as 0) from now on."""
        value = MetricValue()
        filed = _FiledValue(
            value,
            f"{typ}_{multiprocess_mode}" if typ == "gauge" else typ,
            mmap_key(metric_name, name, labelnames, labelvalues, help_text),
        )
        with self._lock:
            self._load(filed)
            self._values.append(filed)
        return value

    def flush(self) -> None:
        """Write every value that changed since the last flush to this process's files."""
        with self._lock:
            for filed in self._values:
                current = filed.value.current()
                if current != filed.written:
                    self._file(filed.kind).write_value(filed.key, *current)  # type: ignore[no-untyped-call]
                    filed.written = current

    def forked(self) -> None:
        """In a forked child: close the parent's files; every value starts again from this pid's files."""
        self._lock = threading.Lock()  # another thread of the parent may have held it at the fork
        for file in self._files.values():
            file.close()  # type: ignore[no-untyped-call]
        self._files.clear()
        self._pid = os.getpid()
        for filed in self._values:
            self._load(filed)

    def _load(self, filed: _FiledValue) -> None:
        filed.written = self._file(filed.kind).read_value(filed.key)  # type: ignore[no-untyped-call]
        filed.value.restore(*filed.written)

    def _file(self, kind: str) -> MmapedDict:
        file = self._files.get(kind)
        if file is None:
            path = self.directory / f"{kind}_{self._pid}.db"
            file = self._files[kind] = MmapedDict(str(path))  # type: ignore[no-untyped-call]
        return file


class _FiledValue:
    """A value in worker mode and where it goes: the file's kind (counter, gauge_livesum, ...), the key in
    it, and (value, timestamp) as last written there."""

    __slots__ = ("key", "kind", "value", "written")

    def __init__(self, value: MetricValue, kind: str, key: str) -> None:
        self.value = value
        self.kind = kind
        self.key = key
        self.written = (0.0, 0.0)


#: This process's metric files, once `use_worker_files` chose them.
_worker_files: WorkerFiles | None = None


def _defined() -> list[Counter | Gauge | Histogram]:
    return [value for value in globals().values() if isinstance(value, Counter | Gauge | Histogram)]


def _precreate() -> None:
    """Children exported from the start, so that "none yet" reads as 0."""
    for what in SHUTDOWN_LEFT_KINDS:
        SHUTDOWN_LEFT.labels(what=what)


def use_worker_files(directory: Path) -> None:
    """Keep every metric's values in per-process files under `directory` (empty, created by the caller),
    from now on and in every process forked later, for the parent's MultiProcessCollector to add up.

    prometheus-client chooses its value class once, at import, from MULTIPROCESS_DIRECTORY_ENV; the
    bridge's metrics exist long before the settings say how many workers there are. So the class is
    switched here and the values made so far (all zero: nothing has been served yet) are made again.
    """
    global _worker_files
    os.environ[MULTIPROCESS_DIRECTORY_ENV] = str(directory)
    _worker_files = WorkerFiles(directory)
    values.ValueClass = _worker_files.value_class
    for metric in _defined():
        if metric._labelnames:
            metric._metrics.clear()
            metric._remembered.clear()
        else:
            metric._metric_init()
    _precreate()


def flush_worker_files() -> None:
    """Write this process's changed values to its metric files (nothing to do with one process)."""
    if _worker_files is not None:
        _worker_files.flush()


async def flush_periodically() -> None:
    """A worker's values reach its files, and the serving process's /metrics, within FLUSH_SECONDS. A
    failed write (the volume full: a file grows with each new series) is logged once and tried again
    every FLUSH_SECONDS; the values stay in memory meanwhile."""
    failing = False
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        try:
            flush_worker_files()
        except OSError as exc:
            if not failing:
                log.error(
                    "could not write this worker's metric values; /metrics shows their last written "
                    "values until a write succeeds",
                    extra={"error": str(exc)},
                )
            failing = True
        else:
            if failing:
                log.info("metric values written again")
            failing = False


def _after_fork_in_child() -> None:
    if _worker_files is not None:
        _worker_files.forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
_precreate()
