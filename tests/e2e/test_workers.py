"""server.workers = 2 against the real broker: deliveries spread over both workers, every 2xx in Kafka once,
/metrics adds the workers up under the usual names, keep-alive connections opened at once spread over both
workers, a killed worker is replaced without losing a 2xx'd event nor the connections queued on its socket,
SIGTERM stops them all; spools stranded by a smaller worker count drain; the failure streak counts
across workers; a worker's counts reach /metrics within metrics.FLUSH_SECONDS, and all of them when it
stops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from bridge.metrics import FLUSH_SECONDS
from tests.e2e.harness import BridgeProcess, consume_all, metric_value, plain_bridge, signed_post
from tests.e2e.hostile import delivery, signed_headers
from tests.e2e.load import LoadResult, run_load

pytestmark = pytest.mark.kafka

#: How long a step may take on two cores shared with the broker and the test itself.
TIMEOUT = 30.0
#: Scheduling slack past a bound the bridge promises.
MARGIN = 3.0
#: Keep-alive connections opened at once, one delivery each.
SIMULTANEOUS = 64


def workers_of(bridge: BridgeProcess) -> list[int]:
    """The pids of the serving process's children (its workers)."""
    assert bridge.process is not None
    pid = bridge.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sorted(int(child) for child in children)


def wait_until(condition: Callable[[], bool], what: str, bridge: BridgeProcess) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {TIMEOUT} s:\n{bridge.log_tail()}"
        time.sleep(0.1)


def soon(condition: Callable[[], bool], what: str, bridge: BridgeProcess) -> None:
    """What the workers counted reaches their files, and /metrics, within FLUSH_SECONDS (they write their
    values that often)."""
    deadline = time.monotonic() + FLUSH_SECONDS + MARGIN
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {FLUSH_SECONDS} s:\n{bridge.log_tail()}"
        time.sleep(0.05)


def ready(bridge: BridgeProcess) -> bool:
    with bridge.ops_client() as client:
        try:
            return client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False


def per_worker(bridge: BridgeProcess, pid: int, name: str, **labels: str) -> float:
    """A counter's total as one worker counted it (the samples whose labels include `labels`), from that
    worker's own metrics file."""
    path = bridge.workdir / "spool" / ".metrics" / f"counter_{pid}.db"
    if not path.exists():
        return 0.0
    return sum(
        sample.value
        for family in MultiProcessCollector.merge([str(path)], accumulate=False)
        for sample in family.samples
        if sample.name == f"{name}_total" and labels.items() <= sample.labels.items()
    )


def deliveries_per_worker(bridge: BridgeProcess, pids: list[int], expected: int) -> bool:
    return sum(per_worker(bridge, pid, "idaas_bridge_deliveries") for pid in pids) == expected


def total(bridge: BridgeProcess, name: str, **labels: str) -> float:
    """Every sample of a counter on /metrics whose labels include `labels`, added up."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(bridge.metrics())
        for sample in family.samples
        if sample.name == f"{name}_total" and labels.items() <= sample.labels.items()
    )


def load(bridge: BridgeProcess, count: int, connections: int) -> LoadResult:
    return asyncio.run(run_load(bridge.base_url, bridge.tokens["prod"], count, connections))


def on_new_connections(bridge: BridgeProcess, count: int) -> set[str]:
    """`count` deliveries, each on a connection of its own, 8 at a time: the kernel hashes each new
    connection to one worker's socket, so both get some. The ids of those answered 2xx."""

    def post(_: int) -> str | None:
        body = delivery()
        answer = signed_post(bridge, body)
        return orjson.loads(body)["id"] if answer.is_success else None

    with ThreadPoolExecutor(8) as pool:
        return {id_ for id_ in pool.map(post, range(count)) if id_ is not None}


def delivered_ids(bridge: BridgeProcess, kafka_bootstrap: str, expected: int) -> Counter[str]:
    messages = consume_all(kafka_bootstrap, bridge.topics.values(), expected, timeout=TIMEOUT)
    return Counter(dict(m.headers() or [])["idaas-delivery-id"].decode() for m in messages)


@pytest.fixture
def two_workers(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> Iterator[BridgeProcess]:
    bridge = plain_bridge(tmp_path, kafka_bootstrap, topic_prefix, **{"server.workers": 2})
    bridge.start()
    wait_until(lambda: ready(bridge), "ready", bridge)
    yield bridge
    bridge.stop()


def test_two_workers_share_the_deliveries_each_in_kafka_once_and_metrics_add_up(
    two_workers: BridgeProcess, kafka_bootstrap: str
) -> None:
    bridge = two_workers
    pids = workers_of(bridge)
    assert len(pids) == 2
    with bridge.ops_client() as client:
        readiness = client.get("/readyz").json()
    assert readiness["ready"] and readiness["kafka_reachable"] and readiness["spool_has_room"]
    assert [(worker["worker"], worker["ready"]) for worker in readiness["workers"]] == [(0, True), (1, True)]
    result = load(bridge, 300, 16)
    accepted = result.accepted | on_new_connections(bridge, 40)
    assert len(accepted) == 340, Counter(a.status for a in result.answers)
    # Both workers answered deliveries (each counts in its own file).
    soon(lambda: deliveries_per_worker(bridge, pids, 340), "340 deliveries in the workers' files", bridge)
    served = {pid: per_worker(bridge, pid, "idaas_bridge_deliveries") for pid in pids}
    assert all(count > 0 for count in served.values()), served
    # /metrics: the usual names, the workers added up; gauges of both workers, process metrics of the tree.
    assert total(bridge, "idaas_bridge_deliveries", status="published") == 340
    assert total(bridge, "idaas_bridge_http_responses", code="200") == 340
    text = bridge.metrics()
    assert metric_value(text, "idaas_bridge_kafka_up") == 1
    assert metric_value(text, "idaas_bridge_workers") == 2
    assert metric_value(text, "process_resident_memory_bytes") > bridge.rss_bytes()
    ids = delivered_ids(bridge, kafka_bootstrap, len(accepted))
    assert set(ids) == accepted and max(ids.values()) == 1
    # SIGTERM to the serving process stops every worker within the one budget (the harness's
    # shutdown_grace_seconds: 5; nothing is left to drain), and it exits 0.
    started = time.monotonic()
    assert bridge.stop(timeout=TIMEOUT) == 0
    assert time.monotonic() - started < 5 + MARGIN
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


def test_keep_alive_connections_opened_at_once_spread_over_both_workers(two_workers: BridgeProcess) -> None:
    # 64 connections opened together, one delivery each (as IDaaS and wrk open their keep-alive
    # connections), while one worker's event loop is busy (stopped for a moment). Each worker has its own
    # socket on the port (SO_REUSEPORT) and the kernel hashes each new connection to one of them, so the
    # busy worker still gets its share and answers it once free. On one shared socket the free worker
    # accepted every one of them.
    bridge = two_workers
    pids = workers_of(bridge)
    busy = pids[0]

    async def open_while_busy() -> LoadResult:
        os.kill(busy, signal.SIGSTOP)
        try:
            sending = asyncio.create_task(
                run_load(bridge.base_url, bridge.tokens["prod"], SIMULTANEOUS, SIMULTANEOUS)
            )
            await asyncio.sleep(1.0)
        finally:
            os.kill(busy, signal.SIGCONT)
        return await sending

    result = asyncio.run(open_while_busy())
    assert len(result.accepted) == SIMULTANEOUS, Counter(a.status for a in result.answers)
    soon(lambda: deliveries_per_worker(bridge, pids, SIMULTANEOUS), "the deliveries counted", bridge)
    served = {pid: per_worker(bridge, pid, "idaas_bridge_deliveries") for pid in pids}
    # An even hash gives each worker fewer than a quarter of 64 once in about 50,000 runs.
    assert all(count >= SIMULTANEOUS // 4 for count in served.values()), served


def test_a_killed_worker_is_replaced_and_no_accepted_delivery_is_lost(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    # spool_first: every 2xx is a record in the worker's spool, so the replacement must drain it.
    bridge = plain_bridge(
        tmp_path, kafka_bootstrap, topic_prefix, **{"server.workers": 2, "spool.ack_mode": "spool_first"}
    )
    bridge.start()
    try:
        wait_until(lambda: ready(bridge), "ready", bridge)
        victim = workers_of(bridge)[0]

        async def load_and_kill() -> LoadResult:
            sending = asyncio.create_task(
                run_load(bridge.base_url, bridge.tokens["prod"], 400, 8, rate=200.0)
            )
            await asyncio.sleep(0.7)
            os.kill(victim, signal.SIGKILL)
            return await sending

        result = asyncio.run(load_and_kill())
        wait_until(
            lambda: len(workers_of(bridge)) == 2 and victim not in workers_of(bridge), "replaced", bridge
        )
        wait_until(lambda: ready(bridge), "ready again", bridge)
        assert metric_value(bridge.metrics(), "idaas_bridge_worker_restarts_total") == 1
        accepted = result.accepted
        assert len(accepted) > 200, Counter(a.status for a in result.answers)
        ids = delivered_ids(bridge, kafka_bootstrap, len(accepted))
        assert accepted <= set(ids), f"{len(accepted - set(ids))} accepted deliveries missing"
        assert "worker ended unasked; starting it again" in bridge.log_path.read_text()
    finally:
        assert bridge.stop(timeout=TIMEOUT) == 0


def test_connections_arriving_while_a_worker_is_replaced_wait_for_the_replacement(
    two_workers: BridgeProcess,
) -> None:
    # The dead worker's socket stays open in the serving process: the connections the kernel hashes to it
    # queue there and the replacement answers them, none is reset.
    bridge = two_workers
    victim, survivor = workers_of(bridge)
    os.kill(victim, signal.SIGKILL)
    accepted = on_new_connections(bridge, 40)
    assert len(accepted) == 40
    [replacement] = set(workers_of(bridge)) - {survivor}
    soon(lambda: deliveries_per_worker(bridge, [replacement, survivor], 40), "40 deliveries counted", bridge)
    assert per_worker(bridge, replacement, "idaas_bridge_deliveries") > 0
    assert metric_value(bridge.metrics(), "idaas_bridge_worker_restarts_total") == 1


def test_spools_of_two_workers_drain_after_going_back_to_one(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    offline = plain_bridge(
        tmp_path,
        kafka_bootstrap,
        topic_prefix,
        "127.0.0.1:1",
        **{"server.workers": 2, "spool.ack_mode": "spool_first"},
    )
    offline.start()
    try:
        wait_until(lambda: ready(offline), "ready", offline)
        pids = workers_of(offline)
        accepted = on_new_connections(offline, 60)
        assert len(accepted) == 60
        soon(
            lambda: all(per_worker(offline, pid, "idaas_bridge_spool_appends") > 0 for pid in pids),
            "appends in both workers' spools",
            offline,
        )
    finally:
        assert offline.stop(timeout=TIMEOUT) == 0
    # Counted during the shutdown, after the last periodic flush: written by the worker's last one.
    left = sum(per_worker(offline, pid, "idaas_bridge_shutdown_left", what="spooled_records") for pid in pids)
    assert left == 60
    spool = offline.workdir / "spool"
    assert sorted(path.name for path in spool.glob("worker-*")) == ["worker-0", "worker-1"]
    single = offline.restarted_with(kafka_bootstrap)
    single.start()
    try:
        ids = delivered_ids(single, kafka_bootstrap, 60)
        assert set(ids) == accepted
        wait_until(lambda: not list(spool.glob("worker-*")), "stranded directories removed", single)
        assert metric_value(single.metrics(), "idaas_bridge_spool_records") == 0
    finally:
        single.stop()


def test_the_failure_streak_counts_answers_of_every_worker(two_workers: BridgeProcess) -> None:
    bridge = two_workers
    pids = workers_of(bridge)
    wrong = BridgeProcess(workdir=bridge.workdir, bootstrap="", topic_prefix="", tokens={"prod": "w" * 32})
    wrong.port, wrong.tls = bridge.port, False
    for _ in range(30):  # a new connection each: the kernel spreads them over the workers
        body = delivery()
        with bridge.client() as client:
            answer = client.post("/webhooks/prod", content=body, headers=signed_headers(wrong, body))
        assert answer.status_code == 401
    soon(
        lambda: all(per_worker(bridge, pid, "idaas_bridge_auth_failures") > 0 for pid in pids),
        "401s counted by both workers",
        bridge,
    )
    soon(lambda: streak(bridge) == 30, "the streak of 30", bridge)
    body = delivery()
    with bridge.client() as client:
        assert (
            client.post("/webhooks/prod", content=body, headers=signed_headers(bridge, body)).status_code
            == 200
        )
    soon(lambda: streak(bridge) == 0, "the streak back to 0", bridge)


def streak(bridge: BridgeProcess) -> float:
    return metric_value(bridge.metrics(), "idaas_bridge_failure_streak", webhook="prod")


def test_a_workers_last_counts_reach_metrics_when_it_stops_and_after_its_restart(
    two_workers: BridgeProcess,
) -> None:
    # A worker writes its values every FLUSH_SECONDS and when it ends: one stopped (SIGTERM, a clean
    # shutdown; the serving process starts it again) right after its deliveries still has them all on
    # /metrics, and so do both once the bridge stops.
    bridge = two_workers
    victim, survivor = workers_of(bridge)
    assert len(on_new_connections(bridge, 20)) == 20
    os.kill(victim, signal.SIGTERM)
    wait_until(lambda: victim not in workers_of(bridge) and len(workers_of(bridge)) == 2, "restarted", bridge)
    [replacement] = set(workers_of(bridge)) - {survivor}
    assert per_worker(bridge, victim, "idaas_bridge_deliveries") > 0
    soon(lambda: total(bridge, "idaas_bridge_deliveries", status="published") == 20, "20 counted", bridge)
    assert metric_value(bridge.metrics(), "idaas_bridge_worker_restarts_total") == 1
    assert len(on_new_connections(bridge, 20)) == 20
    soon(lambda: total(bridge, "idaas_bridge_deliveries", status="published") == 40, "40 counted", bridge)
    assert len(on_new_connections(bridge, 20)) == 20
    assert bridge.stop(timeout=TIMEOUT) == 0
    assert deliveries_per_worker(bridge, [victim, survivor, replacement], 60)


def test_a_worker_that_cannot_start_ends_the_bridge_with_the_precise_error(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Its topics were never created: every worker's start-up check fails.
    bridge = BridgeProcess(
        workdir=tmp_path / "missing",
        bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        tls=False,
        overrides={"server.workers": 2},
    )
    with contextlib.suppress(RuntimeError):  # it may be gone before its /healthz first answers
        bridge.start()
    assert bridge.process is not None
    assert bridge.process.wait(TIMEOUT) == 3
    log = bridge.log_path.read_text()
    assert "configuration error: Kafka topic(s)" in log and "do not exist" in log
    assert f"kafka.topics.authentication.name = '{topic_prefix}" in log  # each named by its setting
    assert "Traceback" not in log
