"""uvicorn's HTTP protocol with the limits an Internet-facing endpoint needs before a request reaches the app.

Left as is, uvicorn (httptools) reads request heads of any size and leaves a connection without any timer
in several states, so a client without a credential could hold sockets forever or make the bridge buffer
and parse megabytes of headers. Per connection, this protocol adds:

- A deadline in every phase the client controls. The request head must arrive within `header_read_timeout`
  of the connection opening or of its first byte (bytes arriving on an idle keep-alive connection start a
  head, so they cannot cancel uvicorn's keep-alive timer and leave nothing armed). The body must arrive
  within `body_timeout`, a backstop behind the receiver's own, more precise body deadline. uvicorn keeps its
  keep-alive idle timer; the TLS handshake's deadline is set on the listener (bridge/servers.py).
- A head budget, enforced as the bytes arrive: at most `max_header_bytes` bytes of a request head are ever
  fed to the parser (httptools accumulates a header value until it is complete), and the URL plus the
  fields may hold at most `max_header_fields` fields and `max_header_bytes` bytes. The signature headers
  are capped at `auth.MAX_SIGNATURE_HEADER_BYTES` each, so the RFC 8941 parser only ever sees small input.
  Past any of these: 431 and the connection is closed.
- Early answers close: a response that starts before the whole request body arrived (404, 413, 503, 401 or
  anything a handler sends) carries `Connection: close` and the connection closes after it. Otherwise the
  unread rest of the body would sit in the parser with no timer armed.

And two things for speed: the writes made during one turn of the event loop leave as one
(`OneWritePerTurn`): uvicorn writes a response's head and its body separately, two send() system calls and
two TCP segments for an answer that fits in one; under load those calls were a fifth of the event loop's
time. And each request's scope carries the `BODY_EXTENSION`, which tells the receiver whether the body has
arrived whole: reading it then cannot wait, so the receiver arms no deadline for it.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any, Final

import httptools
import orjson
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from bridge.auth import MAX_SIGNATURE_HEADER_BYTES, SIGNATURE_HEADERS
from bridge.config import ServerSettings

log = logging.getLogger(__name__)

#: The protocol's body deadline trails the receiver's by this much, so the receiver answers its precise
#: 408 first and the protocol only closes connections the receiver is not reading.
BODY_BACKSTOP_GRACE_SECONDS: Final = 1.0
_SIGNATURE_HEADER_NAMES: Final = frozenset(name.encode() for name in SIGNATURE_HEADERS)
#: The ASGI scope extension (scope["extensions"]) this protocol adds to every request: `{"arrived": bool}`,
#: whether the request's whole body is in memory, kept current as the body arrives. Plain data, not a
#: callable: a closure over uvicorn's request cycle, stored in that cycle's own scope, would make a
#: reference cycle per request, left to the cyclic garbage collector (3-4 % of the event loop).
BODY_EXTENSION: Final = "bridge.body"


def error_response(status: HTTPStatus, error: str, detail: str) -> bytes:
    """A complete JSON error response that announces the connection's end."""
    body = orjson.dumps({"error": error, "detail": detail})
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: application/json\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


HEADER_TIMEOUT_RESPONSE: Final = error_response(
    HTTPStatus.REQUEST_TIMEOUT, "header_timeout", "the request headers arrived too slowly"
)


class _HeadRefused(Exception):
    """Raised in a parser callback to stop httptools at once (it reaches us as an HttpParserError)."""


def _closing_early_answers(cycle: RequestResponseCycle, app: ASGI3Application) -> ASGI3Application:
    """`app`, except that a response started while `cycle`'s body is still arriving ends the connection.

    Setting uvicorn's `keep_alive` to False before the response starts makes uvicorn add `connection:
    close` and close the transport once the response is written; no handler can forget it.
    """

    async def guarded(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        async def send_closing_if_early(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start" and cycle.more_body:
                cycle.keep_alive = False
            await send(message)

        await app(scope, receive, send_closing_if_early)

    return guarded


class OneWritePerTurn:
    """A transport that gathers the writes made during one turn of the event loop into one.

    The gathered bytes leave at the end of the turn (`loop.call_soon`), before the loop waits for I/O
    again, so nothing is held back in time; `close()` sends them first. Everything else is the transport's.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpProtocol(HttpToolsProtocol):
    """One connection; the class attributes are set from the server settings by `protocol_class`."""

    header_read_timeout: float = 10.0
    body_timeout: float = 11.0
    max_header_bytes: int = 16 * 1024
    max_header_fields: int = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_head = True
        self._head_room = self.max_header_bytes
        self._fields = 0
        self._field_bytes = 0
        self._signature_bytes: dict[bytes, int] = {}
        self._refusal: str | None = None

    # --- deadlines ------------------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self._reading_head:
            self._log_refusal(408, f"request head not complete within {self.header_read_timeout} s")
            self._answer_and_close(HEADER_TIMEOUT_RESPONSE)
        else:  # the receiver stopped reading a body it gave up on; nobody else will end the connection
            self.transport.close()

    def _answer_and_close(self, response: bytes) -> None:
        if self.transport.is_closing():
            return
        # Never interleave with the answer to an earlier pipelined request still being written.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(response)
        self.transport.close()

    # --- the head budget --------------------------------------------------------------------------------

    def _refuse(self, detail: str) -> None:
        self._refusal = detail
        raise _HeadRefused

    def _count(self, size: int) -> None:
        self._field_bytes += size
        if self._field_bytes > self.max_header_bytes:
            self._refuse(f"request line and headers are limited to {self.max_header_bytes} bytes")

    # --- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWritePerTurn(transport, self.loop))  # type: ignore[arg-type]
        self._arm(self.header_read_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, feeding a request head to the parser only up to the head budget; then the body's
        deadline, armed only when a read ends with a request's body still arriving.

        The body usually arrives in the read that completes its head, so arming the body's deadline in
        `on_headers_complete` and cancelling it in `on_message_complete` a moment later was a timer
        made and cancelled per request for nothing.
        """
        if self.transport.is_closing():
            return
        self._feed(data)
        if not self._reading_head and self._deadline is None and not self.transport.is_closing():
            self._arm(self.body_timeout)

    def _feed(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        while data:
            if self._reading_head:
                if self._deadline is None:
                    self._arm(self.header_read_timeout)
                piece, data = data[: self._head_room], data[self._head_room :]
                if not piece:
                    self._refusal = f"request heads are limited to {self.max_header_bytes} bytes"
                    break
                self._head_room -= len(piece)
            else:
                piece, data = data, b""
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                # The bridge speaks nothing but HTTP/1.1: answer this request, then end the connection.
                if self.cycle is not None and not self.cycle.response_complete:
                    self.cycle.keep_alive = False
                else:
                    self.transport.close()
                return
            except httptools.HttpParserError as exc:
                if self._refusal is None:
                    # Anyone can send junk: DEBUG, not uvicorn's WARNING per request.
                    self._log_refusal(400, f"not HTTP/1.1: {exc}")
                    self.send_400_response("Invalid HTTP request received.")
                    return
                break
        if self._refusal is not None:
            detail = self._refusal
            self._log_refusal(431, detail)
            self._answer_and_close(
                error_response(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header_too_large", detail)
            )

    def _log_refusal(self, status: int, reason: str) -> None:
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        log.debug(
            "request refused by the transport", extra={"status": status, "reason": reason, "peer": peer}
        )

    # --- httptools callbacks ----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._fields = self._field_bytes = 0
        self._signature_bytes.clear()
        if self._deadline is None:
            self._arm(self.header_read_timeout)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self.max_header_fields:
            self._refuse(f"requests are limited to {self.max_header_fields} header fields")
        self._count(len(name) + len(value))
        lowered = name.lower()
        if lowered in _SIGNATURE_HEADER_NAMES:
            size = self._signature_bytes.get(lowered, 0) + len(value)
            self._signature_bytes[lowered] = size
            if size > MAX_SIGNATURE_HEADER_BYTES:
                header = name.decode("latin-1")
                self._refuse(f"the {header} header is limited to {MAX_SIGNATURE_HEADER_BYTES} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._disarm()  # the head's deadline; the body's is armed after the read (`data_received`)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_head = True
        self._head_room = self.max_header_bytes
        super().on_message_complete()
        if self.cycle is not None:  # uvicorn clears more_body once the last byte of the body was parsed
            self.cycle.scope["extensions"][BODY_EXTENSION]["arrived"] = not self.cycle.more_body

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        cycle.scope["extensions"] = {BODY_EXTENSION: {"arrived": False}}
        super()._start_asgi_task(cycle, _closing_early_answers(cycle, app))


def protocol_class(server: ServerSettings) -> type[GuardedHttpProtocol]:
    """The protocol class uvicorn instantiates per connection, carrying the configured limits."""
    limits = {
        "header_read_timeout": server.header_read_timeout_seconds,
        "body_timeout": server.body_read_timeout_seconds + BODY_BACKSTOP_GRACE_SECONDS,
        "max_header_bytes": server.max_header_bytes,
        "max_header_fields": server.max_header_fields,
    }
    return type("ConfiguredHttpProtocol", (GuardedHttpProtocol,), limits)
