"""The audit backfill against the real broker and the fake Admin API: reconstructed events are published
once, marked, never twice (by fingerprint, against a live delivery and against an earlier run), and a run
that fails mid-window resumes after the last page Kafka confirmed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import consume_all, signed_post
from tests.e2e.test_webhook_watcher_e2e import watched_bridge
from tests.fake_admin_api import ServedFake

pytestmark = pytest.mark.kafka

ACCOUNT = "5e1f0a2b-3c4d-4e5f-9a6b-7c8d9e0f1a2b"
ADMIN = "062e8a87-0000-4000-8000-000000000001"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def user_event(fake: ServedFake, when: datetime, action: str, user: str) -> dict[str, object]:
    return fake.api.add_audit_event(
        eventTime=stamp(when),
        accountId=ACCOUNT,
        eventCategory="MANAGEMENT",
        eventOutcome="SUCCESS",
        entityType="USERS",
        entityAction=action,
        entityId=user,
        entityName=f"user-{user[:4]}",
        subject=ADMIN,
        subjectName="ops.admin",
        subjectType="USER",
        subscriberAdminRoleName="Super Administrator",
        sourceIp="198.51.100.7",
        auditDetails={"entityAttributes": [{"name": "userId", "value": f"user-{user[:4]}"}]},
    )


def test_backfill_publishes_what_was_missed_once_and_resumes_after_a_failure(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, fake_admin_api: ServedFake
) -> None:
    bridge = watched_bridge(tmp_path, kafka_bootstrap, topic_prefix, fake_admin_api)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    users = [str(uuid.uuid4()) for _ in range(4)]
    delivered = user_event(fake_admin_api, base, "ADD", users[0])
    user_event(fake_admin_api, base + timedelta(minutes=1), "ADD", users[1])
    user_event(fake_admin_api, base + timedelta(minutes=2), "EDIT", users[1])
    fake_admin_api.api.add_audit_event(
        eventTime=stamp(base + timedelta(minutes=3)),
        accountId=ACCOUNT,
        eventCategory="AUTHENTICATION",
        eventOutcome="FAIL",
        eventType="AuthenticationDeniedEvent",
        subject=users[2],
    )
    user_event(fake_admin_api, base + timedelta(minutes=4), "REMOVE", users[3])

    bridge.start()
    try:  # the one event IDaaS did deliver, with the fields its audit record has
        live = {
            "id": str(uuid.uuid4()),
            "type": "user.created",
            "accountId": ACCOUNT,
            "eventTime": delivered["eventTime"],
            "data": {
                "subject": ADMIN,
                "subjectName": "ops.admin",
                "subjectType": "USER",
                "entityType": "USERS",
                "entityId": users[0],
                "entityName": f"user-{users[0][:4]}",
                "sourceIp": "198.51.100.7",
            },
        }
        assert signed_post(bridge, orjson.dumps(live)).status_code in (200, 202)
    finally:
        bridge.stop()

    window = ["--from", stamp(base - timedelta(minutes=1)), "--to", stamp(base + timedelta(minutes=10))]
    dry = bridge.cli("backfill", *window, "--dry-run", "--page-size", "2")
    assert dry.returncode == 0, dry.stderr
    assert "user.created" in dry.stdout and "AuthenticationDeniedEvent" in dry.stdout

    # The second page fails for good: the first page is published and checkpointed, the rest is not lost.
    fake_admin_api.api.inject("audit_events", 0)  # the first page
    fake_admin_api.api.inject("audit_events", 503, times=4)
    failed = bridge.cli("backfill", *window, "--page-size", "2")
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert "resumes after the last" in failed.stderr
    fake_admin_api.api.injected.clear()

    resumed = bridge.cli("backfill", *window, "--page-size", "2")
    assert resumed.returncode == 0, resumed.stderr
    again = bridge.cli("backfill", *window, "--page-size", "2")
    assert again.returncode == 0, again.stderr

    topic = bridge.topics["user"]
    messages = consume_all(kafka_bootstrap, [topic], expected=4)
    headers = [dict(message.headers() or []) for message in messages]
    fingerprints = [header["idaas-fingerprint"] for header in headers]
    assert len(messages) == 4 and len(set(fingerprints)) == 4, [m.value() for m in messages]
    backfilled = [h for h in headers if h.get("idaas-source") == b"audit-backfill"]
    assert len(backfilled) == 3 and all(h.get("idaas-audit-id") for h in backfilled)
    values = [orjson.loads(message.value()) for message in messages]
    marked = [v for v in values if "idaasBridgeBackfill" in v["data"]]
    assert sorted(v["type"] for v in marked) == ["user.created", "user.deleted", "user.updated"]
    assert all(v["data"]["idaasBridgeBackfill"]["source"] == "audit-backfill" for v in marked)
    # The last run found everything already there.
    rows = {line.split()[0]: line.split()[1:] for line in again.stdout.splitlines()[1:-1]}
    assert rows["user.created"] == ["0", "2", "0"] and rows["user.deleted"] == ["0", "1", "0"]
    assert rows["AuthenticationDeniedEvent"] == ["0", "0", "1"]
