"""Hostile clients, at the receiver and at the transport: loopback only, bounded in count and time.

Shared by tests/e2e/test_hostile_receiver.py, tests/e2e/test_hostile_transport.py and the before/after
measurement in bench/hostile.py.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import ssl
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
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
            client.post("/webhooks/nobody", content=b"")  # 404 after the whole (empty) body: kept alive
        with ThreadPoolExecutor(copies) as pool:
            return list(pool.map(lambda c: c.post("/webhooks/prod", content=body, headers=headers), clients))
    finally:
        for client in clients:
            client.close()


@contextmanager
def peak_rss(bridge: BridgeProcess) -> Iterator[list[int]]:
    """Samples the bridge's RSS every 20 ms while the block runs; the peak is in the yielded list."""
    peak = [bridge.rss_bytes()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], bridge.rss_bytes())

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


# --- the transport: connections, heads and the TLS handshake -------------------------------------------

MiB = 1024 * 1024


def open_socket(port: int, timeout: float = 5.0) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def read_head(connection: socket.socket) -> bytes:
    """The answer's status line and headers (and whatever body came with them); b"" if closed first."""
    received = b""
    while b"\r\n\r\n" not in received:
        try:
            chunk = connection.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        received += chunk
    return received


def closed_by_peer(connection: socket.socket, within: float) -> bool:
    """True once the bridge closes `connection` (EOF or reset) within `within` seconds; data is skipped."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        connection.settimeout(left)
        try:
            if not connection.recv(65536):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


def hold_open_after_early_answers(port: int, count: int) -> list[tuple[socket.socket, bytes]]:
    """`count` connections that each get an answer before their body was read (an unknown webhook: 404;
    an unsigned delivery declaring a body over the limit: 401 or 413), then send more body bytes and keep
    the socket."""
    host = f"Host: 127.0.0.1:{port}\r\n"
    requests = [
        f"POST /webhooks/nobody HTTP/1.1\r\n{host}Content-Length: 100000\r\n\r\n{{".encode(),
        f"POST /webhooks/prod HTTP/1.1\r\n{host}Content-Length: {64 * MiB}\r\n\r\n{{".encode(),
    ]
    held = []
    for index in range(count):
        connection = open_socket(port)
        connection.sendall(requests[index % len(requests)])
        answer = read_head(connection)
        with suppress(OSError):  # the bridge may have closed it already
            connection.sendall(b'"more":"body bytes after the answer"')
        held.append((connection, answer))
    return held


def oversized_digest(port: int, size: int = 4 * MiB) -> bytes:
    """One unauthenticated delivery whose Content-Digest is `size` bytes of small dictionary members (the
    costliest shape for an RFC 8941 parser: about 10 s of CPU for 4 MiB): the bridge's answer (b"" if it
    reset the connection before answering)."""
    body = b'{"id":"x"}'
    head = (
        f"POST /webhooks/prod HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f'Signature-Input: sig=("@method");created=1\r\nSignature: sig=:AAAA:\r\n'
        f"Content-Length: {len(body)}\r\nContent-Digest: "
    ).encode()
    members = b"a=1, " * (size // 5) + b"sha-256=:AAAA:"
    with open_socket(port, timeout=60) as connection:
        with suppress(OSError):  # the bridge may stop reading (and reset) before the end
            connection.sendall(head + members + b"\r\n\r\n" + body)
        return read_head(connection)


def stream_headers(port: int, total: int, chunk: int = MiB) -> int:
    """One request head that never ends, sent up to `total` bytes: how many went out before the bridge
    stopped taking them."""
    sent = 0
    with open_socket(port, timeout=10) as connection, suppress(OSError):
        connection.sendall(f"POST /webhooks/prod HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Pad: ".encode())
        filler = b"p" * chunk
        while sent < total:
            connection.sendall(filler)
            sent += chunk
    return sent


def silent_connections(port: int, count: int) -> list[socket.socket]:
    """TCP connections that never send a byte (to the TLS port: no ClientHello)."""
    return [open_socket(port) for _ in range(count)]


def client_hello() -> bytes:
    """A TLS ClientHello, as a client's first flight: the server computes its whole answer (key exchange,
    the certificate's signature) from it, the costliest step of a handshake for the server."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with suppress(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def stalled_handshakes(port: int, count: int) -> list[socket.socket]:
    """TCP connections that each send a ClientHello at once and never go further (never read the server's
    answer, never finish the handshake): a handshake flood from unauthenticated clients."""
    hello = client_hello()
    connections = [open_socket(port) for _ in range(count)]
    for connection in connections:
        connection.sendall(hello)
    return connections
