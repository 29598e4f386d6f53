"""Bad input and hard stops: dead letters, slow clients, overload, TLS versions, SIGTERM with a spool."""

from __future__ import annotations

import base64
import json
import signal
import socket
import ssl
import time
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import (
    BridgeProcess,
    consume_all,
    metric_value,
    offline_bridge,
    plain_bridge,
    signed_post,
)
from tests.signing import idaas_headers

pytestmark = pytest.mark.kafka


def test_authenticated_but_invalid_bodies_go_to_the_dead_letter_topic(bridge: BridgeProcess) -> None:
    not_json = b"{not json"
    not_utf8 = b"\xff\xfe\x00binary"
    no_id = orjson.dumps(
        {"type": "user.created", "accountId": "a", "eventTime": "2027-01-01T00:00:00Z", "data": {}}
    )
    for body in (not_json, not_utf8, no_id):
        answer = signed_post(bridge, body)
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "deadlettered"
    messages = consume_all(bridge.bootstrap, [bridge.topics["deadletter"]], expected=3)
    records = sorted((json.loads(m.value()) for m in messages), key=lambda r: r["reason"])
    assert len(records) == 3
    by_body = {r["body"]: r for r in records}
    assert by_body[not_json.decode()]["reason"].startswith("body is not valid JSON")
    binary = by_body[base64.b64encode(not_utf8).decode()]
    assert binary["body_encoding"] == "base64"
    assert by_body[no_id.decode()]["reason"] == "field 'id' must be a non-empty string, got missing"
    assert {r["webhook"] for r in records} == {"prod"}
    assert {m.key() for m in messages} == {b"prod"}
    other_topics = [name for key, name in bridge.topics.items() if key != "deadletter"]
    assert consume_all(bridge.bootstrap, other_topics, expected=1, timeout=3) == []
    metrics = bridge.metrics()
    assert metric_value(metrics, "idaas_bridge_deadletters_total", reason="invalid_json") == 2
    assert metric_value(metrics, "idaas_bridge_deadletters_total", reason="invalid_field") == 1


# Offering the deprecated versions is the point: the bridge must refuse them.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_0_and_1_1_are_refused_and_1_2_and_1_3_accepted(bridge: BridgeProcess) -> None:
    cafile = str(bridge.workdir / "tls" / "dev-cert.pem")

    def handshake(version: ssl.TLSVersion) -> str:
        context = ssl.create_default_context(cafile=cafile)
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = version
        context.maximum_version = version
        with (
            socket.create_connection(("127.0.0.1", bridge.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            return str(tls.version())

    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises(ssl.SSLError):
            handshake(old)


def read_until_closed(connection: socket.socket, timeout: float) -> str:
    """Everything the bridge sends before it closes the connection; a reply may come in several segments."""
    connection.settimeout(timeout)
    chunks = []
    while chunk := connection.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_slow_bodies_time_out_and_overload_gets_503_with_retry_after(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    bridge = plain_bridge(
        tmp_path,
        kafka_bootstrap,
        topic_prefix,
        **{"server.body_read_timeout_seconds": 6, "server.limit_concurrency": 2},
    )
    bridge.start()
    try:
        # Correctly signed (the signature covers the digest, not the body, so a replayed copy passes the
        # header check), then only the first bytes of the body: these take the signed requests' slots.
        body = b'{"id":"slow-1","type":"user.updated","accountId":"a","eventTime":"2027-01-01T00:00:00Z"}'
        signed = idaas_headers(bridge.tokens["prod"], bridge.url(), body)
        head = (
            f"POST /webhooks/prod HTTP/1.1\r\nHost: 127.0.0.1:{bridge.port}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in signed.items())
            + f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body[:6]
        slow = [socket.create_connection(("127.0.0.1", bridge.port)) for _ in range(2)]
        for connection in slow:
            connection.sendall(head)
        time.sleep(2.0)  # both requests are now inside the receiver, waiting for their bodies
        answer = signed_post(bridge, b'{"id":"x"}')
        assert answer.status_code == 503 and answer.headers["retry-after"] == "2"
        for connection in slow:
            reply = read_until_closed(connection, timeout=10)
            assert reply.startswith("HTTP/1.1 408") and "body_timeout" in reply, reply
            connection.close()
    finally:
        bridge.stop()


def test_headers_that_arrive_too_slowly_get_408_and_a_closed_connection(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    bridge = plain_bridge(
        tmp_path, kafka_bootstrap, topic_prefix, **{"server.header_read_timeout_seconds": 1}
    )
    bridge.start()
    try:
        silent = socket.create_connection(("127.0.0.1", bridge.port))
        dribbling = socket.create_connection(("127.0.0.1", bridge.port))
        dribbling.sendall(b"POST /webhooks/prod HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        for connection in (silent, dribbling):
            reply = read_until_closed(connection, timeout=5)  # returns only once the bridge closes it
            assert reply.startswith("HTTP/1.1 408") and "header_timeout" in reply, reply
            connection.close()
        assert time.monotonic() - started < 3
        # a well-behaved client on a new connection is unaffected
        assert signed_post(bridge, b'{"id":"x"}').status_code == 202
    finally:
        bridge.stop()


def test_sigterm_keeps_spooled_events_for_the_next_start(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    bridge = offline_bridge(tmp_path, kafka_bootstrap, topic_prefix)
    bridge.start()
    ids = [f"sigterm-{i}" for i in range(25)]
    event_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for delivery_id in ids:
        body = orjson.dumps(
            {
                "id": delivery_id,
                "type": "user.updated",
                "accountId": "a",
                "eventTime": event_time,
                "data": {},
            }
        )
        answer = signed_post(bridge, body)
        assert answer.status_code == 202 and answer.json()["status"] == "spooled"
    bridge.signal(signal.SIGTERM)
    # uvicorn re-raises the signal once its shutdown is complete, so the exit status is "killed by SIGTERM".
    assert bridge.process is not None and bridge.process.wait(30) in (0, -signal.SIGTERM)
    log = bridge.log_path.read_text()
    assert '"spooled_records_left":25' in log and "Application shutdown complete" in log

    restarted = bridge.restarted_with(kafka_bootstrap)
    restarted.start()
    try:
        messages = consume_all(kafka_bootstrap, [restarted.topics["user"]], expected=25)
        assert sorted(json.loads(m.value())["id"] for m in messages) == sorted(ids)
    finally:
        restarted.stop()
