"""bridge/metrics.py's update paths: the same samples as prometheus-client's own, and in worker mode values
that reach the process's files when flushed (every FLUSH_SECONDS and when a worker ends), from every
thread, and in a forked child's own files."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import prometheus_client
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, values
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

from bridge import metrics


def samples(metric: prometheus_client.metrics.MetricWrapperBase) -> list[tuple[str, float]]:
    """Its samples without the creation times."""
    return [
        (sample.name, sample.value)
        for family in metric.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=8))
def test_a_histogram_counts_each_observation_in_the_buckets_the_library_would(amounts: list[float]) -> None:
    ours = metrics.Histogram("h", "h", buckets=metrics.LATENCY_BUCKETS, registry=None)
    library = prometheus_client.Histogram("h", "h", buckets=metrics.LATENCY_BUCKETS, registry=None)
    for amount in amounts:
        ours.observe(amount)
        library.observe(amount)
    got, expected = samples(ours), samples(library)
    assert [name for name, _ in got] == [name for name, _ in expected]
    for (_, value), (_, wanted) in zip(got, expected, strict=True):
        assert value == wanted or (math.isnan(value) and math.isnan(wanted))


def test_updates_keep_the_librarys_checks() -> None:
    counter = metrics.Counter("c", "c", ["label"], registry=None)
    gauge = metrics.Gauge("g", "g", ["label"], registry=None)
    histogram = metrics.Histogram("h", "h", ["label"], registry=None)
    for update in (counter.inc, lambda: gauge.set(1), lambda: histogram.observe(1)):
        with pytest.raises(ValueError, match="missing label values"):
            update()
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("a").inc(-1)
    counter.labels("a").inc(2.5)
    gauge.labels("a").set(7)
    assert samples(counter)[0] == ("c_total", 2.5) and samples(gauge) == [("g", 7.0)]


def test_values_given_by_position_or_by_name_are_the_same_child() -> None:
    counter = metrics.Counter("c", "c", ["webhook", "event_type", "status"], registry=None)
    counter.labels("prod", "user.created", "published").inc()
    by_name = counter.labels(status="published", webhook="prod", event_type="user.created")
    assert by_name is counter.labels("prod", "user.created", "published")
    by_name.inc()
    assert [
        (sample.labels, sample.value)
        for family in counter.collect()
        for sample in family.samples
        if sample.name == "c_total"
    ] == [({"webhook": "prod", "event_type": "user.created", "status": "published"}, 2.0)]


@pytest.fixture
def worker_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[metrics.WorkerFiles]:
    """This process's metrics made from here on are worker-mode values in tmp_path's files."""
    files = metrics.WorkerFiles(tmp_path)
    monkeypatch.setattr(values, "ValueClass", files.value_class)
    yield files


def collected(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What the serving process's /metrics shows: every worker's files added up as the collector does."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_worker_values_reach_the_files_when_flushed(
    worker_files: metrics.WorkerFiles, tmp_path: Path
) -> None:
    counter = metrics.Counter("c", "c", ["topic"], registry=None)
    histogram = metrics.Histogram("h", "h", buckets=(0.1, 1.0), registry=None)
    gauge = metrics.Gauge("g", "g", multiprocess_mode="livesum", registry=None)
    counter.labels("t").inc(3)
    histogram.observe(0.5)
    gauge.set(11)
    # Created in the files at once (so "none yet" reads as 0), written only by a flush.
    before = collected(tmp_path)
    assert before[("c_total", (("topic", "t"),))] == 0 and before[("g", ())] == 0
    worker_files.flush()
    after = collected(tmp_path)
    assert after[("c_total", (("topic", "t"),))] == 3
    assert after[("h_bucket", (("le", "1.0"),))] == 1 and after[("h_sum", ())] == 0.5
    assert after[("g", ())] == 11
    counter.labels("t").inc()
    worker_files.flush()
    assert collected(tmp_path)[("c_total", (("topic", "t"),))] == 4


def test_a_mostrecent_gauge_keeps_the_time_it_was_set_not_the_flush(
    worker_files: metrics.WorkerFiles, tmp_path: Path
) -> None:
    gauge = metrics.Gauge("streak", "s", multiprocess_mode="mostrecent", registry=None)
    before = time.time()
    gauge.set(5)
    set_at = time.time()
    time.sleep(0.05)
    worker_files.flush()
    [path] = tmp_path.glob("gauge_mostrecent_*.db")
    [(_, value, timestamp, _)] = MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
    assert value == 5 and before <= timestamp <= set_at


def test_updates_from_many_threads_are_all_counted(worker_files: metrics.WorkerFiles, tmp_path: Path) -> None:
    counter = metrics.Counter("c", "c", registry=None)
    threads, each = 4, 20_000
    done = threading.Event()

    def flush_until_done() -> None:
        while not done.is_set():
            worker_files.flush()

    def count() -> None:
        for _ in range(each):
            counter.inc()

    flusher = threading.Thread(target=flush_until_done)
    flusher.start()
    counting = [threading.Thread(target=count) for _ in range(threads)]
    for thread in counting:
        thread.start()
    for thread in counting:
        thread.join()
    done.set()
    flusher.join()
    worker_files.flush()
    assert collected(tmp_path)[("c_total", ())] == threads * each


def test_native_updates_from_many_threads_are_all_counted() -> None:
    """MetricValue takes no lock: a compiled update holds the GIL from read to store. The interpreter is
    told to switch threads as often as it can, so an update that can be interrupted between its read and
    its store loses counts here (one in Python that calls anything in between lost about 13 %)."""
    counter = metrics.Counter("c", "c", ["topic"], registry=None)
    histogram = metrics.Histogram("h", "h", buckets=(0.5, 1.0), registry=None)
    counted, observed = metrics.value_of(counter.labels("t")), metrics.histogram_values(histogram)
    threads, each = 4, 20_000
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def update() -> None:
        for _ in range(each):
            counted.inc(1)
            observed.observe(0.25)

    try:
        updating = [threading.Thread(target=update) for _ in range(threads)]
        for thread in updating:
            thread.start()
        for thread in updating:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert samples(counter)[0] == ("c_total", threads * each)
    total = threads * each
    assert samples(histogram) == [
        ("h_bucket", total),
        ("h_bucket", total),
        ("h_bucket", total),
        ("h_count", total),
        ("h_sum", total * 0.25),
    ]


def test_a_value_looked_up_once_is_the_one_the_metric_exports() -> None:
    counter = metrics.Counter("c", "c", ["topic"], registry=None)
    gauge = metrics.Gauge("g", "g", multiprocess_mode="livesum", registry=None)
    histogram = metrics.Histogram("h", "h", ["topic"], buckets=(0.5, 1.0), registry=None)
    metrics.value_of(counter.labels("t")).inc(2)
    metrics.value_of(gauge).set(7)
    metrics.histogram_values(histogram.labels("t")).observe(0.75)
    assert samples(counter) == [("c_total", 2.0)]
    assert samples(gauge) == [("g", 7.0)]
    assert samples(histogram) == [
        ("h_bucket", 0.0),
        ("h_bucket", 1.0),
        ("h_bucket", 1.0),
        ("h_count", 1.0),
        ("h_sum", 0.75),
    ]


def test_a_mostrecent_gauges_value_is_not_handed_out() -> None:
    """Its `set` must stamp the time (Gauge.set): a value set directly would keep the time of none."""
    gauge = metrics.Gauge("streak", "s", multiprocess_mode="mostrecent", registry=None)
    with pytest.raises(ValueError, match="streak is a mostrecent gauge"):
        metrics.value_of(gauge)


def test_a_forked_child_counts_in_files_of_its_own(
    worker_files: metrics.WorkerFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "_worker_files", worker_files)  # what use_worker_files sets
    counter = metrics.Counter("c", "c", registry=None)
    counter.inc(5)
    worker_files.flush()
    pid = os.fork()
    if pid == 0:  # the child: starts from its own (new) file, counts there, writes it when it ends
        status = 0 if counter._value.get() == 0 else 1
        counter.inc(2)
        metrics.flush_worker_files()
        os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    counter.inc()
    worker_files.flush()
    files = {path.name: path for path in tmp_path.glob("counter_*.db")}
    assert set(files) == {f"counter_{os.getpid()}.db", f"counter_{pid}.db"}
    assert collected(tmp_path)[("c_total", ())] == 8


def test_a_failed_flush_is_logged_once_and_tried_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes: list[OSError | None] = [OSError(28, "No space left on device")] * 3 + [None]

    def flush() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    async def flush_until_written() -> None:
        flusher = asyncio.create_task(metrics.flush_periodically())
        deadline = time.monotonic() + 10
        while outcomes and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # past the successful flush's log line
        flusher.cancel()

    monkeypatch.setattr(metrics, "FLUSH_SECONDS", 0.01)
    monkeypatch.setattr(metrics, "flush_worker_files", flush)
    with caplog.at_level("INFO", logger="bridge.metrics"):
        asyncio.run(flush_until_written())
    assert not outcomes
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1 and "could not write this worker's metric values" in errors[0].getMessage()
    assert errors[0].error == "[Errno 28] No space left on device"
    assert [record.getMessage() for record in caplog.records][-1] == "metric values written again"
