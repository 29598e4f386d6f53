"""A webhook POST as the receiver reads it, straight from the ASGI scope and messages.

Starlette's `Request` built a `Headers` object per request and scanned the whole header list, decoding
it, on every look-up (six per delivery), and its `Response` built a header object to send one small JSON
document: together about 7 µs per delivery. The receiver reads a handful of known headers, so here the
list is walked once, keeping only those, and an answer goes out as the two ASGI messages directly. What the
receiver sees is what Starlette gave it: header values decoded as latin-1, a single value by its first
occurrence, a repeatable one as all occurrences joined with ", " (empty counts as absent), and a client
that hangs up mid-body raises `ClientDisconnect`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import orjson
from starlette.types import Receive, Scope, Send

from bridge.auth import SIGNATURE_HEADERS

#: Every header the receiver reads (lowercase, as ASGI servers give names); the others are never decoded.
READ_HEADERS: Final = frozenset(
    name.encode()
    for name in (*SIGNATURE_HEADERS, "content-length", "host", "x-forwarded-proto", "x-forwarded-host")
)
JSON_CONTENT_TYPE: Final = (b"content-type", b"application/json")


class ClientDisconnect(Exception):
    """The client hung up before its whole body arrived."""


class BodyTooLarge(Exception):
    """The body is (or says it is) over the size limit."""


class WebhookRequest:
    """One POST /webhooks/<name>: its scope, its `receive` and the headers the receiver reads."""

    __slots__ = ("_headers", "_receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        headers: dict[str, list[bytes]] = {}
        for name, value in scope["headers"]:
            if name in READ_HEADERS:
                headers.setdefault(name.decode(), []).append(value)
        self._headers = headers

    @property
    def name(self) -> str:
        """The webhook's name: `{name}` of the route."""
        name: str = self.scope["path_params"]["name"]
        return name

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def client_host(self) -> str | None:
        """The peer's address (the proxy's, behind an ingress); None when the server does not say."""
        client = self.scope.get("client")
        return None if client is None else str(client[0])

    def header(self, name: str) -> str | None:
        """The first value of header `name` (one of READ_HEADERS), None when absent."""
        values = self._headers.get(name)
        return None if values is None else values[0].decode("latin-1")

    def joined(self, name: str) -> str | None:
        """Every value of header `name` (one of READ_HEADERS) joined with ", ", None when absent or empty."""
        values = self._headers.get(name)
        return None if values is None else (b", ".join(values).decode("latin-1") or None)

    async def body(self, limit: int) -> bytes:
        """The whole body; BodyTooLarge as soon as it says or shows it is over `limit` bytes."""
        declared = self.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(
    send: Send, status: int, document: Mapping[str, str], headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer `document` as JSON with `status` and the extra `headers` (names lowercased)."""
    body = orjson.dumps(document)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode()), JSON_CONTENT_TYPE],
        }
    )
    await send({"type": "http.response.body", "body": body})
