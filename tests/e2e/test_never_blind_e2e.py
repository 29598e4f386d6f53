"""The whole story (issue 15) against the real broker and the fake Admin API: the bridge goes down, IDaaS
disables the webhook after 100 failed deliveries, the restarted bridge's watcher sees it at its first poll
and its opt-in re-enable restores it, the bridge then backfills the gap by itself, and every event is in
Kafka exactly once, marked as delivered or backfilled. Also: an automatic backfill that fails mid-window
and crashes resumes at the next start, and the raw audit topic; and the bridge's own downtime (a crash, a
clean restart) with the webhook still enabled is backfilled at the next start. (The manual `backfill`
command is tested in test_backfill_e2e.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from bridge.idaas_delivery import DISABLE_AFTER
from tests.e2e.harness import (
    BridgeProcess,
    consume_all,
    metric_value,
    signed_post,
    wait_for_metric,
    watched_bridge,
)
from tests.fake_admin_api import ServedFake
from tests.idaas_simulator import IdaasSimulator

pytestmark = pytest.mark.kafka

KINDS = ("user.created", "user.updated", "user.deleted")
#: Small margins so the automatic backfill starts within seconds of the re-enable.
QUICK_BACKFILL = {"backfill_margin_seconds": 1, "backfill_audit_lag_seconds": 1}
MISSED = DISABLE_AFTER + 3


def wait_for_log(bridge: BridgeProcess, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in bridge.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{bridge.log_tail()}"
        time.sleep(0.2)


class Story:
    """A watched bridge, its webhook in the fake IDaaS, and IDaaS's side of it (the simulator)."""

    def __init__(
        self, tmp_path: Path, bootstrap: str, prefix: str, fake: ServedFake, workers: int, **admin: object
    ) -> None:
        self.bridge = watched_bridge(
            tmp_path, bootstrap, prefix, fake, reenable=True, reenable_test_wait_seconds=20, **admin
        )
        self.bridge.overrides["server.workers"] = workers
        self.api = fake.api
        self.hook = self.api.add_webhook(self.bridge.url("prod"), events=KINDS)
        self.api.on_test = lambda _hook: signed_post(
            self.bridge, b'{"id": "idaas-test-1", "type": "webhook.test"}'
        )
        # `topics` creates the configured topics that are missing: the raw audit topic, when it is set.
        self.created = self.bridge.cli("topics")
        assert self.created.returncode == 0, self.created.stdout + self.created.stderr
        self.bridge.start()  # writes the dev certificate the simulator trusts
        self.idaas = IdaasSimulator(
            self.api, self.hook, self.bridge.tokens["prod"], self.bridge.workdir / "tls" / "dev-cert.pem"
        )

    def emit(self, count: int) -> None:
        """`count` user lifecycle events, happening now (the gap is computed from real delivery times)."""
        for index in range(count):
            self.idaas.emit(KINDS[index % 3], datetime.now(UTC))

    def outage_until_reenabled(self) -> None:
        """Deliveries, the outage, IDaaS's auto-disable, events only in the audit log, and the restart
        whose first poll re-enables the webhook."""
        self.emit(5)
        assert self.idaas.delivered == 5
        self.bridge.stop()  # the outage
        self.emit(DISABLE_AFTER)
        assert self.hook["enabled"] is False and self.idaas.streak == DISABLE_AFTER
        self.emit(3)  # while disabled: only in the audit log
        self.bridge.start()  # recovered: the first poll sees the disabled webhook and re-enables it
        wait_for_log(self.bridge, "webhook prod is disabled in IDaaS")
        wait_for_metric(
            self.bridge, "idaas_bridge_webhook_reenables_total", 1, webhook="prod", result="reenabled"
        )
        assert self.hook["enabled"] is True and self.api.updates[0]["callbackUrl"] == self.bridge.url("prod")
        wait_for_log(self.bridge, "webhook prod recovered; its gap will be backfilled")

    def backfilled(self, result: str) -> float:
        return metric_value(
            self.bridge.metrics(), "idaas_bridge_backfill_runs_total", webhook="prod", result=result
        )


@contextmanager
def story(
    tmp_path: Path, bootstrap: str, prefix: str, fake: ServedFake, workers: int = 1, **admin: object
) -> Iterator[Story]:
    told = Story(tmp_path, bootstrap, prefix, fake, workers, **QUICK_BACKFILL, **admin)
    try:
        yield told
    finally:
        told.bridge.stop()


def assert_exactly_once(bootstrap: str, told: Story, delivered: int, missed: int = MISSED) -> None:
    """Every audited event in Kafka once by fingerprint; the missed ones marked as backfilled."""
    total = delivered + missed
    messages = consume_all(bootstrap, [told.bridge.topics["user"]], expected=total, timeout=60)
    headers = [dict(message.headers() or []) for message in messages]
    assert len(messages) == total == len({h["idaas-fingerprint"] for h in headers})
    backfilled = [h for h in headers if h.get("idaas-source") == b"audit-backfill"]
    assert len(backfilled) == missed and all(h["idaas-audit-id"] for h in backfilled)
    live = [
        orjson.loads(m.value()) for m, h in zip(messages, headers, strict=True) if "idaas-source" not in h
    ]
    assert len(live) == delivered and not any("idaasBridgeBackfill" in value["data"] for value in live)
    audited = {event["entityId"] for event in told.api.audit_events}
    assert {orjson.loads(message.value())["data"]["entityId"] for message in messages} == audited


@pytest.mark.parametrize("workers", [1, 2])  # with 2, worker 0 watches and backfills; both deliver
def test_outage_auto_disable_reenable_and_automatic_backfill_leave_every_event_in_kafka_exactly_once(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, fake_admin_api: ServedFake, workers: int
) -> None:
    with story(tmp_path, kafka_bootstrap, topic_prefix, fake_admin_api, workers) as told:
        told.outage_until_reenabled()
        assert metric_value(told.bridge.metrics(), "idaas_bridge_webhook_enabled", webhook="prod") == 1
        # Nobody runs `backfill`: the bridge backfills the gap itself once the audit log's lag has passed.
        wait_for_metric(
            told.bridge, "idaas_bridge_backfill_runs_total", 1, webhook="prod", result="completed"
        )
        text = told.bridge.metrics()
        published = sum(
            metric_value(
                text,
                "idaas_bridge_backfill_events_total",
                webhook="prod",
                event_type=kind,
                result="published",
            )
            for kind in KINDS
        )
        assert published == MISSED
        assert told.backfilled("failed") == 0
        assert metric_value(text, "idaas_bridge_backfill_gap_seconds", webhook="prod") > 0
        told.emit(3)  # delivered live again
        assert told.idaas.delivered == 8
    assert_exactly_once(kafka_bootstrap, told, delivered=8)


def test_an_automatic_backfill_that_fails_mid_window_and_crashes_resumes_at_the_next_start(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, fake_admin_api: ServedFake
) -> None:
    audit_topic = f"{topic_prefix}idaas.audit"
    with story(tmp_path, kafka_bootstrap, topic_prefix, fake_admin_api, audit_topic=audit_topic) as told:
        assert f"created topic {audit_topic}" in told.created.stdout, told.created.stdout
        # The first audit page (100 records) is published; the second fails for good (4 attempts).
        told.api.inject("audit_events", 0)
        told.api.inject("audit_events", 503, times=4)
        told.outage_until_reenabled()
        wait_for_metric(told.bridge, "idaas_bridge_backfill_runs_total", 1, webhook="prod", result="failed")
        told.bridge.kill()  # a crash, long before the retry
        told.api.injected.clear()
        searched = len(told.api.searches)

        told.bridge.start()  # the pending window is in the state file: resumed from the checkpoint
        # Then the crash's own downtime (the webhook stayed enabled): duplicates only.
        wait_for_metric(
            told.bridge, "idaas_bridge_backfill_runs_total", 2, webhook="prod", result="completed"
        )
    first_page = told.api.searches[0]
    resumed = told.api.searches[searched]
    start = {item["name"]: item["value"] for item in resumed["searchByAttributes"]}["startTime"]
    window_start = {item["name"]: item["value"] for item in first_page["searchByAttributes"]}["startTime"]
    assert start > window_start  # it went on after the confirmed page instead of starting again
    assert_exactly_once(kafka_bootstrap, told, delivered=5)

    # The raw audit records of the window, keyed by audit id (a page published again repeats its keys).
    raw = consume_all(kafka_bootstrap, [audit_topic], expected=MISSED, timeout=30)
    keys = {message.key().decode() for message in raw if message.key() is not None}
    missed_ids = {event["id"] for event in told.api.audit_events[5:]}
    assert missed_ids <= keys
    assert all(orjson.loads(message.value())["id"] == message.key().decode() for message in raw)


def downtime_backfilled(told: Story, restarts: int) -> float:
    """Wait for this start's downtime backfill (the `restarts`th in the log); the events it published."""
    deadline = time.monotonic() + 20
    scheduled = "webhook prod was not served while the bridge was down"
    while told.bridge.log_path.read_text(errors="replace").count(scheduled) < restarts:
        assert time.monotonic() < deadline, told.bridge.log_tail()
        time.sleep(0.2)
    wait_for_metric(told.bridge, "idaas_bridge_backfill_runs_total", 1, webhook="prod", result="completed")
    text = told.bridge.metrics()
    assert told.backfilled("failed") == 0
    return sum(
        metric_value(
            text, "idaas_bridge_backfill_events_total", webhook="prod", event_type=kind, result="published"
        )
        for kind in KINDS
    )


def test_the_bridges_own_downtime_is_backfilled_at_the_next_start_after_a_crash_and_a_clean_stop(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, fake_admin_api: ServedFake
) -> None:
    """IDaaS retries no refused connection: what it sent while the bridge was down is lost even though the
    webhook stays enabled (far fewer than 100 failures). Each restart backfills its own downtime."""
    with story(tmp_path, kafka_bootstrap, topic_prefix, fake_admin_api) as told:
        wait_for_log(told.bridge, "no earlier run known")  # the first start: nothing to backfill
        told.emit(5)
        state = told.bridge.workdir / "spool" / "backfill-state.json"
        deadline = time.monotonic() + 20
        while b"serving_at" not in (state.read_bytes() if state.exists() else b""):
            assert time.monotonic() < deadline, told.bridge.log_tail()
            time.sleep(0.2)

        told.bridge.kill()  # a crash: the heartbeat is up to 10 s old, so the 5 may be read again
        told.emit(4)  # refused, never retried
        assert told.idaas.delivered == 5 and told.idaas.streak == 4 and told.hook["enabled"] is True
        told.bridge.start()
        assert downtime_backfilled(told, restarts=1) == 4
        told.emit(1)  # served again
        assert told.idaas.delivered == 6 and told.idaas.streak == 0

        told.bridge.stop()  # a clean stop (SIGTERM): the heartbeat is the moment it began
        told.emit(4)
        assert told.idaas.streak == 4 and told.hook["enabled"] is True
        told.bridge.start()
        assert downtime_backfilled(told, restarts=2) == 4

        told.emit(3)  # delivered live again
        assert told.idaas.delivered == 9 and told.idaas.streak == 0
    assert_exactly_once(kafka_bootstrap, told, delivered=9, missed=8)
