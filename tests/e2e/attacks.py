"""Hostile clients against a bridge on loopback, each bounded in count, bytes and time.

Used by test_hostile_transport.py; they take only a port, so they also work against an older bridge when
measuring the before/after figures.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024


def open_socket(port: int, timeout: float = 5.0) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def read_head(connection: socket.socket) -> bytes:
    """The response's status line and headers (and whatever body came with them); b"" if closed first."""
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


def early_answer_requests(port: int) -> list[bytes]:
    """Requests the bridge answers before reading their bodies: an unknown webhook (404) and a declared
    body over the limit (413). Each sends only the first byte of its body."""
    host = f"Host: 127.0.0.1:{port}\r\n"
    return [
        f"POST /webhooks/nobody HTTP/1.1\r\n{host}Content-Length: 100000\r\n\r\n{{".encode(),
        f"POST /webhooks/prod HTTP/1.1\r\n{host}Content-Length: {64 * MiB}\r\n\r\n{{".encode(),
    ]


def hold_open_after_early_answers(port: int, count: int) -> list[tuple[socket.socket, bytes]]:
    """`count` connections that each get an early answer, then send more body bytes and stay open."""
    requests = early_answer_requests(port)
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
    """One unauthenticated delivery whose Content-Digest is `size` bytes; the bridge's answer (b"" if
    it reset the connection before answering)."""
    body = b'{"id":"x"}'
    head = (
        f"POST /webhooks/prod HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f'Signature-Input: sig=("@method");created=1\r\nSignature: sig=:AAAA:\r\n'
        f"Content-Length: {len(body)}\r\nContent-Digest: sha-256=:"
    ).encode()
    with open_socket(port, timeout=30) as connection:
        with suppress(OSError):  # the bridge may stop reading (and reset) before the end
            connection.sendall(head + b"A" * size + b":\r\n\r\n" + body)
        return read_head(connection)


def stream_headers(port: int, total: int, chunk: int = MiB) -> int:
    """Send one request head that never ends, up to `total` bytes; how many bytes went out before the
    bridge stopped taking them."""
    sent = 0
    with open_socket(port, timeout=10) as connection:
        try:
            connection.sendall(f"POST /webhooks/prod HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Pad: ".encode())
            filler = b"p" * chunk
            while sent < total:
                connection.sendall(filler)
                sent += chunk
        except OSError:
            pass
    return sent


def silent_connections(port: int, count: int) -> list[socket.socket]:
    """TCP connections to the TLS port that never send a byte (no ClientHello)."""
    return [open_socket(port) for _ in range(count)]


def rss_mib(pid: int) -> float:
    """The process's resident set size (VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class PeakRss:
    """The highest RSS seen while the `watching` block ran, sampled every 20 ms."""

    pid: int
    before: float = 0.0
    peak: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def growth(self) -> float:
        return self.peak - self.before

    @contextmanager
    def watching(self) -> Iterator[PeakRss]:
        self.before = self.peak = rss_mib(self.pid)

        def sample() -> None:
            while not self._stop.wait(0.02):
                self.peak = max(self.peak, rss_mib(self.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield self
        finally:
            self._stop.set()
            sampler.join()
            self.peak = max(self.peak, rss_mib(self.pid))


def timed(call: Callable[[], int]) -> tuple[int, float]:
    """The status `call` returns and how long it took, in seconds."""
    started = time.perf_counter()
    status = call()
    return status, time.perf_counter() - started
