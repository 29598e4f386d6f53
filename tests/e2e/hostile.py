"""Hostile clients for the receiver's attacks: loopback only, bounded in count and time.

Shared by tests/e2e/test_hostile_receiver.py and the before/after measurement in bench/hostile.py.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import struct
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import orjson

from tests.e2e.harness import BridgeProcess
from tests.signing import idaas_headers

#: Headers no IDaaS delivery carries: no signature, unparseable ones, the wrong label, a non-hex legacy value.
JUNK_HEADERS: tuple[dict[str, str], ...] = (
    {},
    {"Signature": "sig=:AAAA:"},
    {"Content-Digest": "sha-256=:AAAA:", "Signature-Input": "sig=((((", "Signature": "sig=:AAAA:"},
    {"Content-Digest": "md5=:AAAA:", "Signature-Input": 'sig=("@method")', "Signature": "sig=:AAAA:"},
    {"Content-Digest": "sha-256=:AAAA:", "Signature-Input": 'x=("@method")', "Signature": "x=:AAAA:"},
    {"x-sha2-signature": "not-hex"},
)


def delivery(event_type: str = "user.updated", **data: Any) -> bytes:
    """A valid IDaaS envelope with a fresh id."""
    return orjson.dumps(
        {
            "id": f"hostile-{uuid.uuid4()}",
            "type": event_type,
            "accountId": "a",
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": data,
        }
    )


def signed_headers(bridge: BridgeProcess, body: bytes, webhook: str = "prod") -> dict[str, str]:
    return idaas_headers(bridge.tokens[webhook], bridge.url(webhook), body)


def legacy_headers(token: str, body: bytes) -> dict[str, str]:
    """The pre-RFC 9421 scheme: hex HMAC-SHA256 of the body."""
    return {"x-sha2-signature": hmac.new(token.encode(), body, hashlib.sha256).hexdigest()}


def timed_post(
    bridge: BridgeProcess, body: bytes, headers: dict[str, str], webhook: str = "prod"
) -> tuple[int, float]:
    """POST on a new connection, as IDaaS does: (status, seconds from connect to the whole answer)."""
    started = time.perf_counter()
    with bridge.client() as client:
        answer = client.post(f"/webhooks/{webhook}", content=body, headers=headers)
    return answer.status_code, time.perf_counter() - started


def request_head(bridge: BridgeProcess, webhook: str, headers: dict[str, str], length: int) -> bytes:
    lines = [f"POST /webhooks/{webhook} HTTP/1.1", f"Host: 127.0.0.1:{bridge.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["Content-Type: application/json", f"Content-Length: {length}", "", ""]
    return "\r\n".join(lines).encode()


@contextmanager
def slow_bodies(
    bridge: BridgeProcess, webhook: str, headers: dict[str, str], body: bytes, count: int
) -> Iterator[list[socket.socket]]:
    """`count` connections that send their headers and the first bytes of `body`, then nothing more."""
    head = request_head(bridge, webhook, headers, len(body))
    connections = []
    try:
        for _ in range(count):
            connection = socket.create_connection(("127.0.0.1", bridge.port), timeout=10)
            connection.sendall(head + body[: len(body) // 4])
            connections.append(connection)
        yield connections
    finally:
        for connection in connections:
            connection.close()


def first_status(connection: socket.socket, timeout: float) -> int | None:
    """The status of the first answer on `connection`, or None if none came within `timeout`."""
    connection.settimeout(timeout)
    try:
        data = connection.recv(4096)
    except (TimeoutError, ConnectionError):
        return None
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


def hang_up_mid_body(
    bridge: BridgeProcess, webhook: str, headers: dict[str, str], body: bytes, count: int
) -> None:
    """`count` clients that send their headers and half the body, then reset the connection."""
    head = request_head(bridge, webhook, headers, len(body))
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", bridge.port), timeout=10) as connection:
            connection.sendall(head + body[: len(body) // 2])
            time.sleep(0.01)  # let the bridge start reading the body
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def post_junk(bridge: BridgeProcess, webhook: str, count: int, workers: int = 4) -> Counter[int]:
    """`count` requests with JUNK_HEADERS (in turn), from `workers` keep-alive clients at once."""
    body = delivery()

    def send(indices: range) -> list[int]:
        with bridge.client() as client:
            return [
                client.post(
                    f"/webhooks/{webhook}", content=body, headers=JUNK_HEADERS[i % len(JUNK_HEADERS)]
                ).status_code
                for i in indices
            ]

    with ThreadPoolExecutor(workers) as pool:
        batches = pool.map(send, [range(w, count, workers) for w in range(workers)])
        return Counter(status for batch in batches for status in batch)


def replay_concurrently(
    bridge: BridgeProcess, body: bytes, headers: dict[str, str], copies: int
) -> list[httpx.Response]:
    """`copies` copies of one captured request, sent at the same moment on their own connections."""
    clients = [bridge.client() for _ in range(copies)]
    try:
        for client in clients:  # connect first, so the copies race in the receiver, not in the handshake
            client.get("/healthz")
        with ThreadPoolExecutor(copies) as pool:
            return list(pool.map(lambda c: c.post("/webhooks/prod", content=body, headers=headers), clients))
    finally:
        for client in clients:
            client.close()
