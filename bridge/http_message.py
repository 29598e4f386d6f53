"""An HTTP request as an endpoint reads it, and the answer it gives: the interface between the bridge's HTTP
protocol (bridge/http_protocol.py) and the endpoints behind it (the webhook receiver, the operations
endpoints).

An endpoint sees the method, the path (percent-decoded, as routes match it) and the raw path and query (as
the client sent them: what a signature covers), the scheme and the peer's address, and only the header
fields it asked for (`Endpoint.headers`): the others are never decoded or kept. A value is decoded as
latin-1; a single value is its first occurrence, a repeatable one every occurrence joined with ", " (empty
counts as absent). The body may still be arriving when the endpoint starts: `body()` waits for it and raises
`ClientDisconnect` when the client hangs up first.

An answer is data: copies of one delivery that arrive together all get the first one's (bridge/dedup.py),
and the protocol writes it in one piece.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, Protocol

import orjson

JSON: Final = b"application/json"
#: Seconds IDaaS (or any client) should wait before retrying a 503.
RETRY_AFTER_SECONDS: Final = "2"


class ClientDisconnect(Exception):
    """The client hung up before its whole body arrived."""


class BodyTooLarge(Exception):
    """The body is (or says it is) over the size limit."""


@dataclass(init=False)
class Answer:
    """One HTTP answer. `close`: the connection ends after it (the protocol also ends it after an answer
    given before the request's body arrived, and when the client asked). Immutable: a dataclass with a
    hand-written __init__ and Final fields, native when compiled (see `bridge.events.model`)."""

    status: Final[int]
    body: Final[bytes]
    content_type: Final[bytes]
    headers: Final[tuple[tuple[bytes, bytes], ...]]
    close: Final[bool]

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: bytes = JSON,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        close: bool = False,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers
        self.close = close


_STATUS_LINES: Final = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus
}


def encode_answer(
    answer: Answer, default_headers: Iterable[tuple[bytes, bytes]], keep_alive: bool, with_body: bool
) -> bytes:
    """`answer` as the bytes of one HTTP/1.1 response: its status line, `default_headers` (the server's:
    Date), the content headers, `connection: close` unless the connection is kept alive, and the body unless
    the request was HEAD. Here rather than in the protocol, which is interpreted, so that the bytes of
    every answer are put together in native code."""
    body = answer.body
    status_line = _STATUS_LINES.get(answer.status)
    parts = [b"HTTP/1.1 %d \r\n" % answer.status if status_line is None else status_line]
    for name, value in default_headers:
        parts.extend((name, b": ", value, b"\r\n"))
    parts.extend((b"content-type: ", answer.content_type, b"\r\ncontent-length: ", b"%d" % len(body)))
    for name, value in answer.headers:
        parts.extend((b"\r\n", name, b": ", value))
    parts.append(b"\r\n\r\n" if keep_alive else b"\r\nconnection: close\r\n\r\n")
    if with_body:
        parts.append(body)
    return b"".join(parts)


def json_answer(
    status: int, document: Mapping[str, object], headers: Iterable[tuple[str, str]] = (), close: bool = False
) -> Answer:
    """`document` as JSON with `status` and the extra `headers` (names lowercased on the wire)."""
    extra = tuple((name.lower().encode(), value.encode()) for name, value in headers) if headers else ()
    return Answer(status, orjson.dumps(document), JSON, extra, close)


def unavailable(document: Mapping[str, str]) -> Answer:
    """A 503 that IDaaS retries, after Retry-After."""
    return json_answer(503, document, [("Retry-After", RETRY_AFTER_SECONDS)])


OVERLOADED: Final = unavailable(
    {"error": "overloaded", "detail": "too many deliveries in progress; retry shortly"}
)


class Request:
    """One request, filled in by the protocol as it arrives (`feed`, `finish`, `disconnect`)."""

    __slots__ = (
        "_chunks",
        "_headers",
        "_size",
        "_waiter",
        "_wanted",
        "arrived",
        "client_host",
        "disconnected",
        "keep_alive",
        "method",
        "path",
        "query",
        "raw_path",
        "scheme",
    )

    def __init__(
        self,
        method: str,
        path: str,
        raw_path: bytes,
        query: bytes,
        scheme: str,
        client_host: str | None,
        headers: dict[str, list[bytes]],
        wanted: Callable[[], None],
        keep_alive: bool = True,
    ) -> None:
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.query = query
        self.scheme = scheme
        #: The peer's address (the proxy's, behind an ingress); None when the transport does not say.
        self.client_host = client_host
        self._headers = headers
        #: Called when `body()` waits for bytes still to come (the protocol reads on, or sends 100 Continue).
        self._wanted = wanted
        self._chunks: list[bytes] = []
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        #: Whether the connection may serve another request after this one (HTTP/1.1 without "close").
        self.keep_alive = keep_alive
        #: The whole body is here.
        self.arrived = False
        #: The client hung up before the whole body arrived.
        self.disconnected = False

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lowercase, one the endpoint asked for), None when absent."""
        values = self._headers.get(name)
        return None if values is None else values[0].decode("latin-1")

    def joined(self, name: str) -> str | None:
        """Every value of header `name` joined with ", ", None when absent or empty."""
        values = self._headers.get(name)
        return None if values is None else (b", ".join(values).decode("latin-1") or None)

    @property
    def buffered(self) -> int:
        """Body bytes received so far."""
        return self._size

    # --- the protocol's side ---------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        self._wake()

    def finish(self) -> None:
        self.arrived = True
        self._wake()

    def disconnect(self) -> None:
        if not self.arrived:
            self.disconnected = True
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # --- the endpoint's side ---------------------------------------------------------------------------

    async def body(self, limit: int) -> bytes:
        """The whole body; BodyTooLarge as soon as it says or shows it is over `limit` bytes."""
        declared = self.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge
        while not self.arrived:
            if self._size > limit:
                raise BodyTooLarge
            if self.disconnected:
                raise ClientDisconnect
            self._waiter = asyncio.get_running_loop().create_future()
            self._wanted()
            await self._waiter
        return self.arrived_body(limit)

    def arrived_body(self, limit: int) -> bytes:
        """The whole body once it has `arrived`, without the coroutine `body()` is; BodyTooLarge over `limit`
        bytes."""
        if self._size > limit:
            raise BodyTooLarge
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)  # b"" for no body


class Endpoint(Protocol):
    """What serves the requests of one listener."""

    @property
    def headers(self) -> frozenset[bytes]:
        """The header fields (lowercase) the endpoint reads; no other is decoded or kept."""

    async def handle(self, request: Request) -> Answer | None:
        """The answer to `request`; None when there is nobody to answer (the client hung up)."""
