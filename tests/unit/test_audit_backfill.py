"""Audit record → webhook-shaped event: the mapping, the marks, the fingerprint a live delivery shares, and
the checkpoint's advance."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from bridge.adminapi.audit import MARK_FIELD, audit_label, reconstruct, webhook_type
from bridge.adminapi.backfill import Backfill, Checkpoint
from bridge.events.envelope import parse_envelope
from bridge.events.fingerprint import fingerprint
from bridge.events.normalize import normalize
from tests.fake_admin_api import validate

RECEIVED = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
AUDIT = {
    "id": "9d0c1a2b-0000-4000-8000-00000000000a",
    "accountId": "acct-1",
    "eventTime": "2027-03-01T11:58:09.734Z",
    "eventCategory": "MANAGEMENT",
    "eventOutcome": "SUCCESS",
    "entityType": "USERS",
    "entityAction": "ADD",
    "entityId": "user-7",
    "entityName": "tomas.reyes",
    "subject": "admin-1",
    "subjectName": "ops.admin",
    "subjectType": "USER",
    "message": "audit.user.add",
    "auditDetails": {"entityAttributes": [{"name": "userId", "value": "tomas.reyes"}]},
}


def test_the_audit_fixture_is_a_valid_account_audit_event() -> None:
    validate("AccountAuditEvent", AUDIT)


def test_only_trusted_mappings_make_a_type() -> None:
    assert webhook_type(AUDIT) == "user.created"
    assert webhook_type({**AUDIT, "entityAction": "REMOVE"}) == "user.deleted"
    assert webhook_type({**AUDIT, "entityType": "FIDOTOKENS"}) is None
    denied = {"eventCategory": "AUTHENTICATION", "eventType": "AuthenticationDeniedEvent"}
    assert webhook_type(denied) is None and audit_label(denied) == "AuthenticationDeniedEvent"
    assert audit_label({"eventCategory": "MANAGEMENT", "entityType": "GRIDS"}) == "MANAGEMENT/GRIDS/-"


def test_the_reconstruction_is_marked_and_shares_the_live_deliverys_fingerprint() -> None:
    body = orjson.loads(reconstruct(AUDIT, "user.created"))
    assert body["id"] == f"audit-{AUDIT['id']}" and body["eventTime"] == "2027-03-01T11:58:09Z"
    assert body["data"][MARK_FIELD] == {"source": "audit-backfill", "auditId": AUDIT["id"]}
    assert body["data"]["entityAttributes"] == {"userId": "tomas.reyes"}
    assert "message" not in body["data"] and "entityAction" not in body["data"]
    live = {
        "id": "019cf7c8-2a57-7000-8000-000000000001",
        "type": "user.created",
        "accountId": "acct-1",
        "eventTime": "2027-03-01T11:58:09Z",
        "data": {"subject": "admin-1", "entityType": "USERS", "entityId": "user-7"},
    }
    rebuilt = normalize(parse_envelope(orjson.dumps(body)), "prod", RECEIVED)
    delivered = normalize(parse_envelope(orjson.dumps(live)), "prod", RECEIVED)
    assert fingerprint(rebuilt) == fingerprint(delivered)
    other_second = {**live, "eventTime": "2027-03-01T11:58:10Z"}
    assert fingerprint(
        normalize(parse_envelope(orjson.dumps(other_second)), "prod", RECEIVED)
    ) != fingerprint(delivered)


def test_the_checkpoint_starts_at_the_pages_last_time_and_skips_what_was_done_then() -> None:
    start = Checkpoint(("2027-03-01T00:00:00Z", "2027-03-02T00:00:00Z"), "2027-03-01T00:00:00Z")
    page = [
        {"id": "a", "eventTime": "2027-03-01T10:00:00Z"},
        {"id": "b", "eventTime": "2027-03-01T10:00:05Z"},
        {"id": "c", "eventTime": "2027-03-01T10:00:05Z"},
    ]
    after = Backfill._advance(start, page)
    assert (after.next_start, after.done_at_start) == ("2027-03-01T10:00:05Z", ("b", "c"))
    later = Backfill._advance(after, [{"id": "d", "eventTime": "2027-03-01T10:00:05Z"}])
    assert later.done_at_start == ("b", "c", "d")
