"""The walking skeleton: signed deliveries to the daemon over TLS, read back from the real broker."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge.publish.kafka import MAX_RECORD_AGE_MS
from bridge.routing import MAX_FUTURE_SKEW
from tests.e2e.harness import BridgeProcess, consume_all, metric_value
from tests.signing import idaas_headers

pytestmark = pytest.mark.kafka

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "native"
SAMPLES = json.loads((Path(__file__).resolve().parents[2] / "bridge/events/samples.json").read_text())
#: Where each documented type must land; written out here rather than read from the catalog.
EXPECTED_TOPIC = {
    "authentication.succeeded": "authentication",
    "authentication.failed": "authentication",
    "user.created": "user",
    "user.updated": "user",
    "user.deleted": "user",
    "user.registration.completed": "user",
    "password.updated": "authenticator",
    "kba.question.created": "authenticator",
    "grid.created": "authenticator",
    "grid.email.sent": "authenticator",
    "grid.password.email.sent": "authenticator",
    "passkey.created": "authenticator",
    "passkey.updated": "authenticator",
    "passkey.deleted": "authenticator",
    "magiclink.email.sent": "authenticator",
    "face.biometric.created": "authenticator",
}
UNKNOWN = {
    "id": "01a7e5f0-0000-7000-8000-000000000001",
    "type": "device.trusted",
    "accountId": "acct-1",
    # Recent (Kafka's time retention counts from the record timestamp), with an offset and milliseconds.
    "eventTime": (datetime.now(UTC) - timedelta(hours=1))
    .astimezone(timezone(timedelta(hours=1)))
    .isoformat(timespec="milliseconds"),
    "data": {"subject": "u-9", "whatever": [1, 2]},
}


def post(bridge: BridgeProcess, body: bytes, token: str = "prod-token-1-0123456789", **kwargs: Any) -> Any:
    headers = idaas_headers(token, bridge.url(), body, **kwargs)
    with bridge.client() as client:
        return client.post("/webhooks/prod", content=body, headers=headers)


def epoch_ms(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339).timestamp() * 1000)


def assert_record_timestamp(stamp: int, event_time: str, received_at: str, sent_at: float) -> None:
    """The event time, within its bounds. The samples' fixed 2027 event times are ahead of the clock until
    February 2027 (stamped with the receive time) and behind it after (never older than 24 h); UNKNOWN's is
    an hour ago (kept)."""
    event_ms = epoch_ms(event_time)
    if event_ms - epoch_ms(received_at) > MAX_FUTURE_SKEW.total_seconds() * 1000:
        assert stamp == epoch_ms(received_at)
    elif event_ms >= sent_at * 1000 - MAX_RECORD_AGE_MS:
        assert stamp == event_ms
    else:
        assert sent_at * 1000 - MAX_RECORD_AGE_MS - 1000 <= stamp <= time.time() * 1000 - MAX_RECORD_AGE_MS


def test_each_of_the_16_types_and_an_unknown_one_lands_exactly_as_normalized(bridge: BridgeProcess) -> None:
    sent_at = time.time()
    for delivery in [*SAMPLES, UNKNOWN]:
        answer = post(bridge, orjson.dumps(delivery))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"id": delivery["id"], "status": "published"}
    messages = consume_all(bridge.bootstrap, bridge.topics.values(), expected=17)
    assert len(messages) == 17
    by_id = {json.loads(m.value())["id"]: m for m in messages}
    assert set(by_id) == {d["id"] for d in [*SAMPLES, UNKNOWN]}
    for delivery in [*SAMPLES, UNKNOWN]:
        message = by_id[delivery["id"]]
        value = json.loads(message.value())
        received_at = value.pop("received_at")
        assert sent_at - 1 <= datetime.fromisoformat(received_at).timestamp() <= time.time() + 1
        if delivery is UNKNOWN:
            assert message.topic() == bridge.topics["unknown"]
            assert value["category"] == "unknown" and value["occurred_at"] == (
                datetime.fromisoformat(UNKNOWN["eventTime"])
                .astimezone(UTC)
                .isoformat(timespec="milliseconds")
            ).replace("+00:00", "Z")
            assert value["data"] == UNKNOWN["data"] and value["webhook"] == "prod"
        else:
            golden = json.loads((GOLDEN / f"{delivery['type']}.json").read_text())
            golden.pop("received_at")
            assert value == golden, delivery["type"]
            assert message.topic() == bridge.topics[EXPECTED_TOPIC[delivery["type"]]]
        expected_key = value["user"]["name"] or value["user"]["id"] or value["account_id"]
        assert message.key() == expected_key.encode()
        headers = dict(message.headers() or [])
        fingerprint = headers.pop("idaas-fingerprint")
        assert headers == {
            "idaas-event-type": delivery["type"].encode(),
            "idaas-delivery-id": delivery["id"].encode(),
            "content-type": b"application/json",
            "schema": b"idaas.event/1",
        }
        assert re.fullmatch(rb"[0-9a-f]{32}", fingerprint)
        assert_record_timestamp(message.timestamp()[1], delivery["eventTime"], received_at, sent_at)

    metrics = bridge.metrics()
    for delivery in SAMPLES:
        assert (
            metric_value(
                metrics,
                "idaas_bridge_deliveries_total",
                webhook="prod",
                event_type=delivery["type"],
                status="published",
            )
            == 1
        )
    assert (
        metric_value(metrics, "idaas_bridge_deliveries_total", event_type="unknown", status="published") == 1
    )
    assert metric_value(metrics, "idaas_bridge_http_responses_total", webhook="prod", code="200") == 17
    assert (
        metric_value(
            metrics,
            "idaas_bridge_kafka_messages_total",
            result="delivered",
            topic=bridge.topics["authenticator"],
        )
        == 10
    )
    assert metric_value(metrics, "idaas_bridge_failure_streak", webhook="prod") == 0


def test_unauthenticated_deliveries_get_401_and_store_nothing(bridge: BridgeProcess) -> None:
    body = orjson.dumps(SAMPLES[0])
    good = idaas_headers("prod-token-1-0123456789", bridge.url(), body)
    other_uri = idaas_headers("prod-token-1-0123456789", "https://evil.example/webhooks/prod", body)
    tampered = body.replace(b"mira.okafor", b"mallory")
    cases: dict[str, tuple[bytes, dict[str, str]]] = {
        "signature_mismatch/wrong token": (body, idaas_headers("not-the-token", bridge.url(), body)),
        "content_digest_mismatch/tampered body": (tampered, good),
        # The signature covers Content-Digest: a swapped one fails the HMAC before the body is read.
        "signature_mismatch/wrong digest": (
            body,
            good | {"Content-Digest": idaas_headers("x", bridge.url(), b"{}")["Content-Digest"]},
        ),
        "signature_mismatch/wrong target uri": (body, other_uri),
        "missing_signature_headers/no headers": (body, {"Content-Type": "application/json"}),
        "missing_signature_headers/no signature": (body, {k: v for k, v in good.items() if k != "Signature"}),
        "malformed_signature_input/garbage": (body, good | {"Signature-Input": "sig=(((("}),
    }
    with bridge.client() as client:
        for name, (payload, headers) in cases.items():
            answer = client.post("/webhooks/prod", content=payload, headers=headers)
            assert answer.status_code == 401, (name, answer.text)
            assert answer.json()["reason"] == name.split("/")[0], name
        assert client.get("/webhooks/prod").status_code == 405
        assert client.post("/webhooks/nope", content=body, headers=good).status_code == 404
    assert consume_all(bridge.bootstrap, bridge.topics.values(), expected=1, timeout=4) == []
    metrics = bridge.metrics()
    assert metric_value(metrics, "idaas_bridge_http_responses_total", webhook="prod", code="401") == len(
        cases
    )
    assert metric_value(metrics, "idaas_bridge_auth_failures_total", reason="signature_mismatch") == 3
    # Only the requests signed the way IDaaS signs (wrong token, URL or body) count toward auto-disable;
    # the three without a well-formed signature could come from anyone and do not.
    well_formed = [name for name in cases if name.startswith(("signature_mismatch", "content_digest"))]
    assert len(well_formed) == 4
    assert metric_value(metrics, "idaas_bridge_failure_streak", webhook="prod") == len(well_formed)


def test_a_retried_delivery_id_is_published_once(bridge: BridgeProcess) -> None:
    body = orjson.dumps(SAMPLES[2])
    first = post(bridge, body)
    retry = post(bridge, body)
    assert first.status_code == 200 and first.json()["status"] == "published"
    assert retry.status_code == 200 and retry.json() == {"id": SAMPLES[2]["id"], "status": "duplicate"}
    messages = consume_all(bridge.bootstrap, bridge.topics.values(), expected=2, timeout=6)
    assert len(messages) == 1
    metrics = bridge.metrics()
    assert (
        metric_value(metrics, "idaas_bridge_deliveries_total", status="duplicate", event_type="user.created")
        == 1
    )


def test_body_over_the_limit_gets_413_before_verification(bridge: BridgeProcess) -> None:
    body = b'{"pad":"' + b"x" * (1024 * 1024 + 10) + b'"}'
    answer = post(bridge, body)
    assert answer.status_code == 413 and answer.json()["error"] == "body_too_large"


def test_health_readiness_and_tls_only_on_the_webhook_port(bridge: BridgeProcess) -> None:
    with bridge.ops_client() as client:
        assert client.get("/healthz").json() == {"status": "alive"}
        ready = client.get("/readyz").json()
        assert ready["ready"] is True and ready["kafka_reachable"] is True and ready["spooled_records"] == 0
    import httpx

    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{bridge.port}/healthz", timeout=3)
