"""Hostile clients against the receiver, the daemon as a process on loopback (issue 8's receiver half).

In each attack a correctly signed delivery sent meanwhile is answered 2xx within 1 s, memory stays bounded,
the failure streak does not move for junk, and Kafka holds every accepted event exactly once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import pytest

from tests.e2e.harness import BridgeProcess, consume_all, metric_value, plain_bridge
from tests.e2e.hostile import (
    delivery,
    first_status,
    hang_up_mid_body,
    legacy_headers,
    post_junk,
    replay_concurrently,
    signed_headers,
    slow_bodies,
    timed_post,
)
from tests.figures import record_figure
from tests.signing import idaas_headers

pytestmark = pytest.mark.kafka

#: The product's promise while under attack: the valid delivery's answer within this.
ANSWER_WITHIN_SECONDS = 1.0
#: The chart's memory limit is 512 MiB; an attack must not take the bridge anywhere near it.
RSS_LIMIT_BYTES = 256 * 1024 * 1024
UNAUTHENTICATED_SLOTS = 8
T = TypeVar("T")


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[BridgeProcess]:
    """One plain-HTTP bridge: `prod` (RFC 9421 only), `old` (also the legacy scheme), `quiet` (streak)."""
    process = plain_bridge(
        tmp_path_factory.mktemp("hostile"),
        kafka_bootstrap,
        f"h{uuid.uuid4().hex[:10]}.",
        **{"server.unauthenticated_limit_concurrency": UNAUTHENTICATED_SLOTS},
    )
    process.tokens = {name: f"{name}-token-0123456789" for name in ("prod", "old", "quiet")}
    process.webhook_settings = {"old": {"legacy_sha2_signature": True}}
    process.start()
    yield process
    process.stop()
    log = process.log_path.read_text()
    assert '"level":"ERROR"' not in log and "Traceback" not in log, log[-3000:]
    # Nothing hostile reached Kafka (no dead letters: every body that was not signed was refused) and no
    # event was stored twice.
    accepted = consume_all(process.bootstrap, process.topics.values(), expected=1, timeout=10)
    assert not [m for m in accepted if m.topic() == process.topics["deadletter"]]
    ids = [json.loads(message.value())["id"] for message in accepted]
    assert len(ids) == len(set(ids)), "an event was stored twice"


@contextmanager
def during(attack: Callable[[], T]) -> Iterator[Future[T]]:
    """Run `attack` in a background thread; the block runs while it is under way."""
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(attack)
        time.sleep(0.05)
        yield running
        running.result(timeout=30)


def valid_delivery_meanwhile(bridge: BridgeProcess, attack: str) -> None:
    """The promise: a correctly signed delivery sent during the attack gets its 2xx within 1 s."""
    body = delivery()
    status, seconds = timed_post(bridge, body, signed_headers(bridge, body))
    rss = bridge.rss_bytes()
    record_figure(
        f"[hostile] {attack}: valid delivery {status} in {seconds * 1000:.0f} ms, RSS {rss >> 20} MiB"
    )
    assert status in (200, 202) and seconds < ANSWER_WITHIN_SECONDS, (status, seconds)
    assert rss < RSS_LIMIT_BYTES


def test_slow_unauthenticated_bodies_take_no_slot_of_signed_deliveries(bridge: BridgeProcess) -> None:
    body = delivery()
    unsigned = {"Content-Digest": "sha-256=:AAAA:", "Signature-Input": "sig=(", "Signature": "sig=:AAAA:"}
    legacy_junk = {"x-sha2-signature": "ab" * 32}  # well-formed hex: only the body can refute it
    with (
        slow_bodies(bridge, "prod", unsigned, body, count=40) as refused,
        slow_bodies(bridge, "old", legacy_junk, body, count=40) as reading,
    ):
        # Without a valid signature the body is never waited for: 401 at once.
        assert [first_status(c, timeout=5) for c in refused] == [401] * len(refused)
        valid_delivery_meanwhile(bridge, "40 slow unsigned bodies + 40 slow legacy bodies")
        # The legacy webhook's own deliveries also pass: signed the RFC 9421 way, they skip its pool.
        body = delivery()
        status, seconds = timed_post(bridge, body, signed_headers(bridge, body, "old"), "old")
        assert status == 200 and seconds < ANSWER_WITHIN_SECONDS
        # The legacy bodies fill their small pool; the rest are turned away, and all end within ~2 s.
        statuses = [first_status(c, timeout=8) for c in reading]
    assert statuses.count(408) == UNAUTHENTICATED_SLOTS, statuses
    assert statuses.count(503) == len(statuses) - UNAUTHENTICATED_SLOTS, statuses
    # ... and a genuine legacy delivery is served once they are gone.
    legacy = delivery()
    status, _ = timed_post(bridge, legacy, legacy_headers(bridge.tokens["old"], legacy), "old")
    assert status == 200


def test_junk_does_not_move_the_failure_streak_but_a_well_formed_wrong_signature_does(
    bridge: BridgeProcess,
) -> None:
    with during(lambda: post_junk(bridge, "quiet", count=60)) as junk:
        valid_delivery_meanwhile(bridge, "60 junk requests")
    assert junk.result() == {401: 60}
    metrics = bridge.metrics()
    assert metric_value(metrics, "idaas_bridge_failure_streak", webhook="quiet") == 0
    assert metric_value(metrics, "idaas_bridge_http_responses_total", webhook="quiet", code="401") == 60
    body = delivery()
    wrong_token = idaas_headers("not-the-token-0123456789", bridge.url("quiet"), body)
    assert timed_post(bridge, body, wrong_token, "quiet")[0] == 401
    wrong_url = idaas_headers(bridge.tokens["quiet"], "https://elsewhere.example/webhooks/quiet", body)
    assert timed_post(bridge, body, wrong_url, "quiet")[0] == 401
    assert metric_value(bridge.metrics(), "idaas_bridge_failure_streak", webhook="quiet") == 2
    assert timed_post(bridge, body, signed_headers(bridge, body, "quiet"), "quiet")[0] == 200
    assert metric_value(bridge.metrics(), "idaas_bridge_failure_streak", webhook="quiet") == 0


def test_clients_hanging_up_mid_body_are_counted_quietly(bridge: BridgeProcess) -> None:
    def hung_up() -> dict[str, float]:
        metrics = bridge.metrics()
        return {
            webhook: metric_value(metrics, "idaas_bridge_client_disconnects_total", webhook=webhook)
            for webhook in ("prod", "old")
        }

    before = hung_up()
    replayed, legacy = delivery(), delivery()

    def hang_ups() -> None:
        hang_up_mid_body(bridge, "prod", signed_headers(bridge, replayed), replayed, count=10)
        hang_up_mid_body(bridge, "old", {"x-sha2-signature": "cd" * 32}, legacy, count=10)

    with during(hang_ups):
        valid_delivery_meanwhile(bridge, "20 mid-body hang-ups")
    expected = {"prod": 10.0, "old": 10.0}
    deadline = time.monotonic() + 5  # the bridge notices the last resets a moment after the client sent them
    while (counted := {hook: value - before[hook] for hook, value in hung_up().items()}) != expected:
        assert time.monotonic() < deadline, counted
        time.sleep(0.1)
    # The fixture's teardown checks the log for ERROR lines and tracebacks.


def test_concurrent_replays_of_one_delivery_are_stored_once_and_answered_alike(
    bridge: BridgeProcess,
) -> None:
    body = delivery()
    captured = signed_headers(bridge, body)
    with during(lambda: replay_concurrently(bridge, body, captured, copies=10)) as replays:
        valid_delivery_meanwhile(bridge, "10 concurrent replays")
    answers = replays.result()
    assert [a.status_code for a in answers] == [200] * 10
    delivery_id = json.loads(body)["id"]
    assert {a.json()["id"] for a in answers} == {delivery_id}
    assert {a.json()["status"] for a in answers} <= {"published", "duplicate"}
    user = bridge.topics["user"]
    stored = consume_all(bridge.bootstrap, [user], expected=1, timeout=10, done=None)
    assert [json.loads(m.value())["id"] for m in stored].count(delivery_id) == 1


def test_resource_names_from_payloads_do_not_become_metric_series(bridge: BridgeProcess) -> None:
    with bridge.client() as client:
        for index in range(200):
            body = delivery("authentication.succeeded", resourceName=f"app-{index}-" + "x" * 200)
            answer = client.post("/webhooks/prod", content=body, headers=signed_headers(bridge, body))
            assert answer.status_code == 200
        body = delivery("authentication.succeeded", resourceName="User Portal")
        assert client.post("/webhooks/prod", content=body, headers=signed_headers(bridge, body)).is_success
    metrics = bridge.metrics()
    record_figure(f"[hostile] 200 distinct resourceName values: /metrics is {len(metrics)} bytes")
    series = [line for line in metrics.splitlines() if line.startswith("idaas_bridge_authentications_total")]
    assert sorted(line.rsplit(" ", 1)[0] for line in series) == [
        'idaas_bridge_authentications_total{outcome="success",resource="User Portal"}',
        'idaas_bridge_authentications_total{outcome="success",resource="other"}',
    ]
    assert metric_value(metrics, "idaas_bridge_authentications_total", resource="other") == 200
    assert "x" * 200 not in metrics
    valid_delivery_meanwhile(bridge, "after 200 distinct resourceName values")
