"""The bridge's lifecycle against a broker of its own that the tests stop and pause: Kafka health from
librdkafka's statistics (no probe), probes that never wait for Kafka, and one shutdown budget."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import BridgeProcess, metric_value, plain_bridge
from tests.e2e.hostile import delivery, signed_headers, slow_bodies, timed_post
from tests.figures import record_figure
from tests.kafka_broker import LocalKafka

pytestmark = pytest.mark.kafka

#: The harness's kafka.statistics_interval_seconds.
STATISTICS_INTERVAL = 1.0
#: Scheduling slack on two cores shared with the broker and the test itself.
MARGIN = 2.0


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalKafka]:
    kafka = LocalKafka.private("lifecycle").started()
    yield kafka
    kafka.stop()


@pytest.fixture
def lifecycle_bridge(tmp_path: Path, broker: LocalKafka, topic_prefix: str) -> Iterator[BridgeProcess]:
    broker.start()  # when running: waits until it serves again (a test before may have paused it)
    process = plain_bridge(tmp_path, broker.bootstrap, topic_prefix)
    yield process
    process.stop()


def seconds_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition` held (polled every 0.1 s); fails the test after `timeout`."""
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        assert elapsed < timeout, f"not within {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - started


def kafka_up(bridge: BridgeProcess) -> float:
    return metric_value(bridge.metrics(), "idaas_bridge_kafka_up")


def test_kafka_up_follows_the_broker_without_any_probe(
    lifecycle_bridge: BridgeProcess, broker: LocalKafka
) -> None:
    # Nothing calls /readyz in this test: only /metrics is read.
    lifecycle_bridge.start()
    up_after = seconds_until(lambda: kafka_up(lifecycle_bridge) == 1, STATISTICS_INTERVAL + MARGIN)
    broker.stop()
    try:
        down_after = seconds_until(lambda: kafka_up(lifecycle_bridge) == 0, STATISTICS_INTERVAL + MARGIN)
    finally:
        broker.start()
    # librdkafka's reconnect backoff grows while the broker is away: allow it.
    back_after = seconds_until(lambda: kafka_up(lifecycle_bridge) == 1, 15)
    record_figure(
        f"[kafka_up] statistics every {STATISTICS_INTERVAL:g} s: 1 {up_after:.2f} s after healthy, "
        f"0 {down_after:.2f} s after the broker stopped, 1 again {back_after:.2f} s after it restarted"
    )


def test_a_readyz_burst_during_a_kafka_outage_does_not_slow_a_signed_delivery(
    lifecycle_bridge: BridgeProcess, broker: LocalKafka
) -> None:
    # spool_first: the delivery's own path during the outage is the spool's fsync, nothing waits for Kafka.
    lifecycle_bridge.overrides["spool.ack_mode"] = "spool_first"
    lifecycle_bridge.start()
    broker.stop()
    stop = threading.Event()
    probes: list[int] = []

    def probe() -> None:
        with lifecycle_bridge.ops_client() as client:
            while not stop.is_set():
                probes.append(client.get("/readyz").status_code)

    threads = [threading.Thread(target=probe, daemon=True) for _ in range(16)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        answers = []
        for _ in range(5):
            body = delivery()
            answers.append(timed_post(lifecycle_bridge, body, signed_headers(lifecycle_bridge, body)))
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        broker.start()
    record_figure(
        f"[readyz burst, Kafka down] {len(probes)} probes answered; deliveries "
        f"{[(status, round(seconds, 3)) for status, seconds in answers]}"
    )
    assert len(probes) > 100, "the burst did not happen: the test did not test it"
    assert set(probes) == {200}
    assert all(status == 202 and seconds < 1.0 for status, seconds in answers), answers


def test_sigterm_ends_within_the_grace_period_and_logs_what_was_left(
    lifecycle_bridge: BridgeProcess, broker: LocalKafka
) -> None:
    grace = 4.0
    lifecycle_bridge.overrides |= {"spool.ack_mode": "spool_first", "server.shutdown_grace_seconds": grace}
    lifecycle_bridge.start()
    broker.pause()  # a slow broker: connections stay up, nothing is acknowledged
    try:
        accepted = 0
        for _ in range(200):
            body = delivery()
            status, _seconds = timed_post(lifecycle_bridge, body, signed_headers(lifecycle_bridge, body))
            accepted += status == 202
        assert accepted == 200
        assert metric_value(lifecycle_bridge.metrics(), "idaas_bridge_spool_records") > 0
        body = delivery()
        with slow_bodies(lifecycle_bridge, "prod", signed_headers(lifecycle_bridge, body), body, 3):
            time.sleep(0.2)  # the requests are in flight
            process = lifecycle_bridge.process
            assert process is not None
            started = time.monotonic()
            lifecycle_bridge.signal(signal.SIGTERM)
            process.wait(timeout=grace + 30)
            took = time.monotonic() - started
    finally:
        broker.resume()
    record_figure(
        f"[shutdown] grace {grace:g} s, paused broker, 200 spooled, 3 in flight: exit in {took:.2f} s"
    )
    assert took <= grace + 1.0, lifecycle_bridge.log_tail()
    lines = log_lines(lifecycle_bridge)
    phases = {line["phase"]: line for line in lines if line["message"].startswith("shutdown: ")}
    assert list(phases) == ["requests", "drain", "spool", "flush"], lifecycle_bridge.log_tail()
    assert phases["drain"]["spooled_records"] > 0  # the paused broker acknowledged nothing
    [stopped] = [line for line in lines if line["message"] == "bridge stopped"]
    assert stopped["spooled_records_left"] > 0 and stopped["budget_left_seconds"] < 1.0, stopped


def test_the_process_is_logged_started_shutting_down_and_finished_once(
    lifecycle_bridge: BridgeProcess,
) -> None:
    # One process, two listeners: the operations listener runs inside the public server's start-up and
    # shutdown, and logged uvicorn's lines about the process and its shutdown a second time.
    lifecycle_bridge.start()
    process = lifecycle_bridge.process
    assert process is not None
    lifecycle_bridge.stop()
    messages = [line["message"] for line in log_lines(lifecycle_bridge)]
    assert "bridge stopped" in messages, lifecycle_bridge.log_tail()
    assert messages.count(f"Started server process [{process.pid}]") == 1, messages
    assert messages.count(f"Finished server process [{process.pid}]") == 1, messages
    assert messages.count("Shutting down") == 1, messages


def log_lines(bridge: BridgeProcess) -> list[dict[str, Any]]:
    """The bridge's JSON log lines (uvicorn's own lines are JSON too; anything else is skipped)."""
    lines = []
    for text in bridge.log_path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(text))
    return [line for line in lines if isinstance(line, dict) and "message" in line]


def test_a_fractional_keep_alive_timeout_reaches_the_server_intact(
    lifecycle_bridge: BridgeProcess,
) -> None:
    # 0.9 s: int() made it 0, and every connection closed right after its first answer.
    lifecycle_bridge.overrides["server.keep_alive_timeout_seconds"] = 0.9
    lifecycle_bridge.start()
    connection = http.client.HTTPConnection("127.0.0.1", lifecycle_bridge.port, timeout=10)
    try:
        for pause in (0.0, 0.3):
            time.sleep(pause)  # within the keep-alive timeout: the same connection serves the next delivery
            body = delivery()
            connection.request("POST", "/webhooks/prod", body, signed_headers(lifecycle_bridge, body))
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200
        sock = connection.sock
        assert sock is not None
        time.sleep(0.9 + MARGIN)  # past it: the bridge has closed the idle connection
        sock.settimeout(5)
        assert sock.recv(1) == b""
    finally:
        connection.close()
