"""The bridge's HTTP/1.1 server protocol: one connection, parsed by httptools, each request handed straight to
its listener's endpoint, with the limits an Internet-facing endpoint needs before a request reaches it.

Why not uvicorn's protocol and an ASGI application: per delivery, uvicorn built a request cycle, an ASGI
scope, receive/send coroutines and their message dicts, and wrote the answer in two pieces; under load that
machinery cost more than everything the bridge itself does to a delivery (docs/benchmarks.md, fourth
round). Here a request is one `Request` object, one task runs the endpoint, and the answer leaves in one
write. uvicorn still runs the listeners (`bridge/servers.py`): the sockets' lifecycle, the signals, the
lifespan, the graceful shutdown, the Date header; its `http` setting is an `HttpListener`, which makes
this class's connections.

Compiled (pyproject.toml [tool.idaas-bridge]): every callback here runs once or more per request. So the
listener's limits live in an `HttpListener` each connection is given, not in a subclass made at run time
(a compiled class has no interpreted subclasses), and the classes derive from no asyncio class: uvloop
and asyncio call a protocol's methods by name, and uvloop lends its read buffer to any protocol with
`get_buffer` that is not an `asyncio.Protocol`. A compiled class with a Python base keeps a weak reference
list its deallocation never clears (mypyc 2.4), which crashes the interpreter when a weakly referenced
connection is freed; without one, a connection cannot be weakly referenced at all.

Per connection:
- A deadline in every phase the client controls. The request head must arrive within `header_read_timeout`
  of the connection opening or of its first byte (bytes arriving on an idle keep-alive connection start a
  head). The body must arrive within `body_timeout`, a backstop behind the receiver's own, more precise body
  deadline, armed only when a read ends with a body still arriving, and for a pipelined request only once it
  is served (reading pauses while it waits). An idle keep-alive connection closes after
  `keep_alive_timeout`. The TLS handshake's deadline is set on the listener (bridge/servers.py).
- A head budget, enforced as the bytes arrive: at most `max_header_bytes` bytes of a request head are ever
  fed to the parser (httptools accumulates a header value until it is complete; twice that for a head
  that begins in the read ending a body, see `_feed`), and the URL plus the
  fields may hold at most `max_header_fields` fields and `max_header_bytes` bytes. The signature headers
  are capped at `auth.MAX_SIGNATURE_HEADER_BYTES` each, so the RFC 8941 parser only ever sees small input
  (bridge/http_head.py counts the fields). Past any of these: 431 and the connection is closed.
- Early answers close: an answer given before the request's whole body arrived (404, 413, 503, 401...)
  carries `Connection: close` and the connection closes after it; otherwise the unread rest of the body
  would sit in the parser with no timer armed.
- One request at a time: a pipelined request waits (and reading pauses) until the answer before it is out;
  reading also pauses while a body the endpoint has not asked for piles up, and while the client does not
  read its answers. Pausing takes effect at the next read, and one read can hold thousands of small
  requests: at most `MAX_PIPELINED_REQUESTS` wait, the parser stops at the next one, and the connection
  closes after answering those (RFC 9112 9.3.2: the client retries the rest on a new connection).
- A backstop on concurrency: past `limit` requests in progress the answer is an immediate 503 with
  Retry-After (the receiver answers the same past its own, lower limits). Connections do not count: one
  without a request in progress holds nothing but its deadline, and counting them let anyone holding
  `limit` silent connections (renewed every `header_read_timeout`) turn every delivery into a 503.
- A cap on open connections, for memory: past `connection_limit`, the connection idle longest is closed
  (bridge/connection_limit.py), never one with a request in progress.

TLS is this protocol's too (TlsHttpProtocol): the listener accepts plain TCP connections, and each one is
upgraded here once its ClientHello arrives, so a connection counts against the cap from its accept and
holds no TLS state before it sends a byte. With the TLS layer inside the listener (asyncio's `ssl=`), a
connection reached the protocol only after its handshake: the ones that never sent a ClientHello (about
40 KiB each until the handshake deadline) could be neither counted nor closed, and one client opening
them grew a worker by 600 MB in 2 s.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import urllib.parse
from collections import deque
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any, Final, cast

import httptools
from uvicorn.server import ServerState

from bridge.config import ServerSettings
from bridge.connection_limit import ConnectionLimit
from bridge.http_head import HeadReader
from bridge.http_message import OVERLOADED, Answer, Endpoint, Request, encode_answer, json_answer
from bridge.metrics import CONNECTIONS_EVICTED

log = logging.getLogger(__name__)

#: The protocol's body deadline trails the receiver's by this much, so the receiver answers its precise
#: 408 first and the protocol only closes connections the receiver is not reading.
BODY_BACKSTOP_GRACE_SECONDS: Final = 1.0
#: Body bytes held for a request whose endpoint has not asked for them yet, before reading pauses.
BODY_HIGH_WATER_BYTES: Final = 64 * 1024
#: Complete requests a connection may queue behind the one in progress (no client the bridge serves
#: pipelines; without a cap one 256 KiB read of tiny requests made 9,000 of them, 4.5 MB, and 9,000 answers).
MAX_PIPELINED_REQUESTS: Final = 8
#: The most a TLS connection's read hands the protocol at once (libuv's own read size).
TLS_READ_BYTES: Final = 64 * 1024
#: The one buffer every TLS connection of the process lends uvloop's TLS layer (TlsHttpProtocol).
_TLS_READ_BUFFER: Final = memoryview(bytearray(TLS_READ_BYTES))
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
# The phases a connection's deadline can belong to (compared by identity).
_HELLO: Final = "TLS ClientHello"
_HEAD: Final = "head"
_BODY: Final = "body"
_IDLE: Final = "keep-alive idle"
INTERNAL_ERROR: Final = json_answer(
    500, {"error": "internal_error", "detail": "the request could not be handled"}, close=True
)


def error_response(status: HTTPStatus, error: str, detail: str) -> bytes:
    """A complete JSON error response that announces the connection's end, for answers the transport gives
    before any request exists (no Date header: there may be no request to date)."""
    answer = json_answer(status.value, {"error": error, "detail": detail})
    return encode_answer(answer, (), keep_alive=False, with_body=True)


HEADER_TIMEOUT_RESPONSE: Final = error_response(
    HTTPStatus.REQUEST_TIMEOUT, "header_timeout", "the request headers arrived too slowly"
)
BAD_REQUEST_RESPONSE: Final = error_response(
    HTTPStatus.BAD_REQUEST, "bad_request", "this is not an HTTP/1.1 request"
)


class _PipelineFull(Exception):
    """Raised in a parser callback to stop httptools at a request past `MAX_PIPELINED_REQUESTS`."""


class HttpListener:
    """One listener's limits, shared by its connections, and what uvicorn calls for each new connection (its
    `http` setting): `listener(server_state, loop, listening)` is the connection's protocol.

    The limits come from the server settings (`http_listener`), whose defaults are the only ones: none here
    to drift. A test may shorten a deadline here before the listener makes a connection."""

    def __init__(
        self,
        endpoint: Endpoint,
        server: ServerSettings,
        limit: int,
        connection_limit: ConnectionLimit,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        self.endpoint = endpoint
        self.header_read_timeout: float = server.header_read_timeout_seconds
        #: body_read_timeout_seconds plus BODY_BACKSTOP_GRACE_SECONDS.
        self.body_timeout: float = server.body_read_timeout_seconds + BODY_BACKSTOP_GRACE_SECONDS
        self.keep_alive_timeout: float = server.keep_alive_timeout_seconds
        self.max_header_bytes: int = server.max_header_bytes
        self.max_header_fields: int = server.max_header_fields
        #: Requests in progress on the listener past which requests get 503 at once.
        self.limit = limit
        #: The listener's open connections, capped.
        self.connection_limit = connection_limit
        #: The listener terminates TLS with this context (None: plain HTTP).
        self.tls_context = tls_context
        self.tls_handshake_timeout: float = server.tls_handshake_timeout_seconds

    def __call__(
        self,
        server_state: ServerState,
        loop: asyncio.AbstractEventLoop,
        listening: Callable[[], bool] | None = None,
    ) -> HttpProtocol:
        """A new connection's protocol. `server_state`: the uvicorn server's, which holds the listener's
        connections, its requests in progress (the graceful shutdown waits for both) and the Date header.
        `listening`: whether the listener still accepts connections (None: it does whenever one is made)."""
        if self.tls_context is None:
            return HttpProtocol(self, server_state, loop, listening)
        return TlsHttpProtocol(self, server_state, loop, listening)


class HttpProtocol:
    """One connection: a stream protocol (data_received, eof_received) that is not an asyncio.Protocol, so
    that uvloop lends TlsHttpProtocol its read buffer."""

    # Dropped when the connection ends (`connection_lost`).
    __deletable__ = ("parser",)

    def __init__(
        self,
        listener: HttpListener,
        server_state: ServerState,
        loop: asyncio.AbstractEventLoop,
        listening: Callable[[], bool] | None,
    ) -> None:
        self.listener = listener
        self.loop = loop
        self._listening = listening
        self.server_state = server_state
        # uvicorn types the connections with its own protocol classes; it only counts them and calls
        # `shutdown()`.
        self.connections: set[Any] = server_state.connections
        self.tasks = server_state.tasks
        # The head being parsed; the parser calls its native callbacks for the URL and each field as the
        # protocol's own (it looks them up once, here). It holds nothing of the protocol: no cycle.
        self._head = head = HeadReader(
            listener.endpoint.headers, listener.max_header_bytes, listener.max_header_fields
        )
        self.on_url: Callable[[bytes], None] = head.on_url
        self.on_header: Callable[[bytes, bytes], None] = head.on_header
        self.parser: Any = httptools.HttpRequestParser(self)
        # Answer a request followed by bytes after its "Connection: close" rather than failing the parse.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self._scheme = "http"
        # The request being parsed, the one being served, and pipelined ones waiting for it.
        self._parsing: Request | None = None
        self._serving: Request | None = None
        self._waiting: deque[Request] = deque()
        self._answered: Request | None = None
        self._writing_paused = False
        self._reading_paused = False
        self._closing = False
        # The parser stopped at a request past MAX_PIPELINED_REQUESTS: nothing more is read.
        self._pipeline_full = False
        self._continue_sent = False
        # The endpoint has asked for the body of the request being parsed: it no longer piles up unasked.
        self._body_asked = False
        self._reading_head = True
        self._head_room = listener.max_header_bytes
        # The one deadline of the phase the connection is in (None: none runs), and the timer that checks
        # it: a deadline moved later leaves the timer as it is (it re-arms when it fires early), so a
        # keep-alive connection serving request after request makes no timer per request.
        self._deadline: float | None = None
        self._phase = _HEAD
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        # Aborts a closed connection whose client has not read the end of its last answer (see `_close`).
        self._abort_timer: asyncio.TimerHandle | None = None
        # Counted in `connection_limit` (from `connection_made` until it ends or the limit evicts it).
        self._limited = False

    # --- the stream protocol -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # a stream transport (uvloop's is not a subclass)
        self.transport = transport
        self.connections.add(self)
        self._limited = True
        # Past the cap, another connection (or this one) is evicted.
        self.listener.connection_limit.opened(self)
        if not transport.is_closing():
            self._connected(transport)

    def _connected(self, transport: asyncio.Transport) -> None:
        """The connection is ready for its first request (a TLS one once its handshake completed)."""
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
        if transport.get_extra_info("sslcontext") is not None:
            self._scheme = "https"
        # The first timer fires by the keep-alive timeout (if shorter): the idle deadline after the first
        # answer then falls after it and moves no timer earlier, so a connection of one request makes one
        # timer, not two (a slow head's timer re-arms once for the rest of its deadline).
        listener = self.listener
        self._arm(
            _HEAD,
            listener.header_read_timeout,
            min(listener.header_read_timeout, listener.keep_alive_timeout),
        )
        if self._listening is not None and not self._listening():
            # Made after the shutdown began (a TLS handshake that completed meanwhile): uvicorn asked the
            # connections it knew then to close, and never asks this one. Closed, so TLS ends with its
            # close_notify rather than with the process.
            self.shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        if self not in self.connections:  # ended already: a TLS handshake's end may be reported twice
            return
        self.connections.discard(self)
        if self._limited:
            self._limited = False
            self.listener.connection_limit.closed(self)
        # The parser holds the protocol's bound callbacks, and uvloop's TLS layer (reached through the
        # transport) keeps the buffered protocol's get_buffer and buffer_updated after the connection
        # ends: both dropped, the connection is freed by reference counting when it ends rather than left
        # to the cyclic collector, which heap.py makes rare (docs/benchmarks.md, ninth round). Nothing
        # reads after this; an answer that comes later is not written.
        del self.parser
        self.transport = None
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        for request in (self._parsing, self._serving, *self._waiting):
            if request is not None:
                request.disconnect()
        self._waiting.clear()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        if transport.is_closing() or self._pipeline_full:
            return
        if self._phase is _IDLE:
            self._deadline = None
        self._feed(data)
        if not self._reading_head:
            self._arm_body()

    def eof_received(self) -> bool | None:
        return None  # close the connection; a request in progress learns it from connection_lost

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close now if idle, else after the answer in progress."""
        self._closing = True
        if self._serving is None:
            self._close()

    def evict(self) -> None:
        """The listener is over its connection limit and this connection is the one idle longest: abort it
        (nothing is in progress on it; an abort frees its memory now, a TLS close would wait for the
        client's close_notify)."""
        self._limited = False
        transport = self.transport
        if transport is not None:
            transport.abort()

    # --- reading ------------------------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Feed the parser, a request head only up to the head budget. A body is fed a head budget at a
        time too: it may end inside a piece and the next request's head begin there, uncounted, so at most
        that much of a head reaches the parser before the budget applies (a whole read, 256 KiB, held until
        the head deadline, when a body's piece was the rest of the read)."""
        # A read larger than a piece is sliced without copies; a smaller one (every IDaaS delivery) is fed as
        # it is (a memoryview costs more than the slices of bytes it saves there).
        max_header_bytes = self.listener.max_header_bytes
        view: bytes | memoryview = memoryview(data) if len(data) > max_header_bytes else data
        while view:
            if self._reading_head:
                if self._deadline is None:
                    self._arm(_HEAD, self.listener.header_read_timeout)
                piece, view = view[: self._head_room], view[self._head_room :]
                if not piece:
                    self._head.refusal = f"request heads are limited to {max_header_bytes} bytes"
                    break
                self._head_room -= len(piece)
            else:
                piece, view = view[:max_header_bytes], view[max_header_bytes:]
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                # The bridge speaks nothing but HTTP/1.1: answer this request, then end the connection.
                request = self._parsing or self._serving
                if request is not None:
                    request.keep_alive = False
                    request.finish()
                else:
                    self._close()
                return
            except httptools.HttpParserError as exc:
                if self._pipeline_full:
                    return
                if self._head.refusal is None:
                    # Anyone can send junk: DEBUG, not a WARNING per request.
                    self._log_refusal(400, f"not HTTP/1.1: {exc}")
                    self._write_and_close(BAD_REQUEST_RESPONSE)
                    return
                break
        detail = self._head.refusal
        if detail is not None:
            self._log_refusal(431, detail)
            self._write_and_close(
                error_response(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "header_too_large", detail)
            )

    def _update_reading(self) -> None:
        """Read unless a pipelined request waits, a body piles up unasked, or the client does not read."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        parsing = self._parsing
        pause = (
            bool(self._waiting)
            or self._pipeline_full
            or self._writing_paused
            or (
                parsing is not None
                and not self._reading_head
                and not self._body_asked
                and parsing.buffered > BODY_HIGH_WATER_BYTES
            )
        )
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _body_wanted(self) -> None:
        """The endpoint waits for body bytes: read on, and tell a client that asked (Expect) to send them."""
        if self._head.expect_continue and not self._continue_sent and self.transport is not None:
            self._continue_sent = True
            self.transport.write(_CONTINUE)
        self._body_asked = True
        self._update_reading()

    # --- deadlines ------------------------------------------------------------------------------------

    def _arm_body(self) -> None:
        """Start the body deadline when a read ended with the body of the request being served still
        arriving. Not for a pipelined request waiting behind it: reading is paused, its body cannot come
        (it starts when the request is served)."""
        parsing = self._parsing
        transport = self.transport
        if (
            parsing is not None
            and parsing is self._serving
            and not self._reading_head
            and self._deadline is None
            and transport is not None
            and not transport.is_closing()
        ):
            self._arm(_BODY, self.listener.body_timeout)

    def _arm(self, phase: str, seconds: float, check_within: float | None = None) -> None:
        """Set the phase's deadline `seconds` from now; the timer fires by then, or by `check_within`."""
        now = self.loop.time()
        deadline = now + seconds
        self._deadline, self._phase = deadline, phase
        at = deadline if check_within is None else now + check_within
        if self._timer is None or self._timer_at > at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = self.loop.call_at(at, self._check_deadline), at

    def _check_deadline(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if self.loop.time() < deadline:  # moved later since the timer was armed
            self._timer, self._timer_at = self.loop.call_at(deadline, self._check_deadline), deadline
            return
        self._deadline = None
        if self._phase is _HELLO:  # no ClientHello: nothing to answer, in either protocol
            self._close()
        elif self._phase is _HEAD and self._serving is None:
            timeout = self.listener.header_read_timeout
            self._log_refusal(408, f"request head not complete within {timeout} s")
            self._write_and_close(HEADER_TIMEOUT_RESPONSE)
        elif self._phase is _HEAD:  # a head started while an answer is in progress: end after it
            self._closing = True
        else:  # idle past the keep-alive timeout, or a body the endpoint gave up on: nobody else ends it
            self._close()

    # --- httptools callbacks ----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if len(self._waiting) >= MAX_PIPELINED_REQUESTS:
            # Every request queued has its whole body (this one began after it): answer them, then close.
            self._waiting[-1].keep_alive = False
            self._pipeline_full = True
            raise _PipelineFull
        self._head.begin()
        self._continue_sent = self._body_asked = False
        if self._deadline is None:
            self._arm(_HEAD, self.listener.header_read_timeout)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._deadline = None  # the head's deadline; the body's is armed after the read (`data_received`)
        parser = self.parser
        head = self._head
        # Its query is None when the URL has none, which httptools' stub does not say (and compiled code
        # checks a value against its declared type).
        url: Any = httptools.parse_url(head.url)
        raw_path: bytes = url.path
        query: bytes | None = url.query
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = urllib.parse.unquote(path)
        request = Request(
            parser.get_method().decode("ascii"),
            path,
            raw_path,
            b"" if query is None else query,
            self._scheme,
            None if self.client is None else self.client[0],
            head.headers,
            self._body_wanted,
            keep_alive=parser.get_http_version() != "1.0" and parser.should_keep_alive(),
        )
        self._parsing = request
        if self._serving is None:
            self._serve(request)
        else:
            self._waiting.append(request)
            self._update_reading()

    def on_body(self, body: bytes) -> None:
        request = self._parsing
        if request is not None and request is not self._answered:
            request.feed(body)
            if request.buffered > BODY_HIGH_WATER_BYTES:
                self._update_reading()

    def on_message_complete(self) -> None:
        self._deadline = None
        self._reading_head = True
        self._head_room = self.listener.max_header_bytes
        request = self._parsing
        self._parsing = None
        if request is not None:
            request.finish()

    # --- serving ------------------------------------------------------------------------------------------

    def _serve(self, request: Request) -> None:
        self._serving = request
        self.listener.connection_limit.busy(self)
        if len(self.tasks) >= self.listener.limit:
            self._answer(request, OVERLOADED)
            return
        task = self.loop.create_task(self._run(request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, request: Request) -> None:
        try:
            answer = await self.listener.endpoint.handle(request)
        except Exception:
            log.exception("the endpoint failed", extra={"path": request.path})
            answer = INTERNAL_ERROR
        if answer is None:  # the client hung up: nobody is listening
            self._finished(keep_alive=False)
        else:
            self._answer(request, answer)

    def _answer(self, request: Request, answer: Answer) -> None:
        transport = self.transport
        early = not request.arrived
        keep_alive = request.keep_alive and not (answer.close or early or self._closing)
        if early:
            self._answered = request  # its remaining body bytes are parsed and dropped
        if transport is not None and not transport.is_closing():
            transport.write(
                encode_answer(
                    answer, self.server_state.default_headers, keep_alive, with_body=request.method != "HEAD"
                )
            )
        self._finished(keep_alive)

    def _finished(self, keep_alive: bool) -> None:
        """The answer to the request served is out (or nobody waits for it): serve the next, or wait."""
        self._serving = None
        transport = self.transport
        if self._limited:  # the connection has not ended: it may be evicted again, once it has no request
            self.listener.connection_limit.idle(self)
        if not keep_alive:
            self._close()
            return
        if transport is None or transport.is_closing():
            return
        if self._waiting:
            self._serve(self._waiting.popleft())
            self._update_reading()
            self._arm_body()
        elif self._parsing is None and self._reading_head and self._deadline is None:
            self._arm(_IDLE, self.listener.keep_alive_timeout)

    # --- ending -------------------------------------------------------------------------------------------

    def _close(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            if transport.get_write_buffer_size():
                # close() waits until the client has read the rest: forever, for one that never reads,
                # and uvicorn's graceful shutdown waits for the connection. Such a client gets the
                # keep-alive timeout, like any other client that does nothing.
                self._abort_timer = self.loop.call_later(self.listener.keep_alive_timeout, transport.abort)

    def _write_and_close(self, response: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        # Never interleave with an answer still being prepared for an earlier request.
        if self._serving is None:
            transport.write(response)
        self._close()

    def _log_refusal(self, status: int, reason: str) -> None:
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
        log.debug(
            "request refused by the transport", extra={"status": status, "reason": reason, "peer": peer}
        )


class TlsHttpProtocol(HttpProtocol):
    """HttpProtocol on a TLS listener: each accepted TCP connection is upgraded with the event loop's
    `start_tls` (server side, `tls_context`), within `tls_handshake_timeout` for the handshake and for the
    closing one; a handshake that fails or runs out of time ends the connection without a word.

    uvloop's TLS layer decrypts into a buffer the protocol lends it rather than handing it a new bytes
    object, for which CPython's `SSLObject.read` allocates 256 KiB on every read and shrinks it to the bytes
    read: with glibc's mmap threshold fixed below that (bridge/heap.py) a mapping made and unmapped per
    read, 10 us per delivery (docs/benchmarks.md, seventh round). One buffer serves every connection of the
    process: each read is copied out of it (the delivery's few KiB) before the event loop runs anything
    else. uvloop lends the buffer to a protocol that has `get_buffer` and is not an `asyncio.Protocol`
    (asyncio's own loop hands such a protocol bytes, through `data_received`)."""

    def _connected(self, transport: asyncio.Transport) -> None:
        """Wait for the ClientHello, within the handshake's deadline. The TLS layer is set up when it arrives
        (`buffer_updated`): a connection that sends nothing holds no TLS state meanwhile (about 4 KiB, not
        40: OpenSSL's and uvloop's, which the cap alone bounds but does not shrink)."""
        self._arm(_HELLO, self.listener.tls_handshake_timeout)

    def _start_tls(self, hello: bytes) -> None:
        """Hand the connection to the TLS layer (`start_tls`, server side, the handshake and the closing one
        within `tls_handshake_timeout`), with the bytes that came first. `start_tls`'s first step runs here,
        not in a task: it takes the socket's reads over before the loop reads again. The first bytes go to
        the TLS layer after its `connection_made`, which that step queued."""
        transport = self.transport
        context = self.listener.tls_context
        assert transport is not None and context is not None
        self._deadline = None
        timeout = self.listener.tls_handshake_timeout
        upgrade = self.loop.start_tls(
            transport,
            cast(asyncio.BaseProtocol, self),
            context,
            server_side=True,
            ssl_handshake_timeout=timeout,
            ssl_shutdown_timeout=timeout,
        )
        self._step_handshake(cast(Coroutine[Any, Any, asyncio.Transport], upgrade))
        if not transport.is_closing():
            # uvloop's TLS layer reads through a lent buffer, as asyncio's does (neither is declared an
            # asyncio.BufferedProtocol).
            tls_layer = cast(asyncio.BufferedProtocol, transport.get_protocol())
            self.loop.call_soon(_hand_over, transport, tls_layer, hello)

    def _step_handshake(self, upgrade: Coroutine[Any, Any, asyncio.Transport], _done: object = None) -> None:
        """Run the upgrade until it waits for the handshake, and again when the handshake is over. The
        upgrade awaits one future, once: the one step a task would add is this done callback."""
        try:
            waiting = upgrade.send(None)
        except StopIteration as done:
            transport = cast(asyncio.Transport, done.value)
            if self._limited and not transport.is_closing():
                HttpProtocol._connected(self, transport)
            else:
                # Evicted as its handshake completed, or ended before: uvloop's upgrade then returns a
                # closed transport and does not report the connection's end.
                transport.abort()
                self.connection_lost(None)
        except (Exception, asyncio.CancelledError) as failure:
            # Failed, timed out, or closed by an eviction or the shutdown. The TLS layer reports the end of
            # a connection it has not handed over only in some of these cases: end it here
            # (`connection_lost` ignores a second report).
            self.connection_lost(None)
            # The upgrade's future holds the exception, whose traceback holds this frame and so the
            # upgrade: a reference cycle per failed handshake, with the connection's TLS state in it, left
            # for the cyclic collector (which heap.py makes rare). Without the traceback it is freed now.
            failure.__traceback__ = None
        else:
            waiting.add_done_callback(functools.partial(self._step_handshake, upgrade))

    def get_buffer(self, sizehint: int) -> memoryview:
        return _TLS_READ_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_TLS_READ_BUFFER[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self._phase is _HELLO:  # the connection's first bytes, still to be decrypted
            self._start_tls(data)
        else:
            HttpProtocol.data_received(self, data)


def _hand_over(transport: asyncio.Transport, tls_layer: asyncio.BufferedProtocol, data: bytes) -> None:
    """Give `data`, read from `transport` before its TLS layer existed, to that layer, as the transport
    would have."""
    view = memoryview(data)
    while view and not transport.is_closing():
        buffer = memoryview(tls_layer.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        tls_layer.buffer_updated(size)
        view = view[size:]


def http_listener(
    server: ServerSettings,
    endpoint: Endpoint,
    limit: int,
    tls: ssl.SSLContext | None = None,
    max_connections: int | None = None,
    listener: str = "webhooks",
) -> HttpListener:
    """The listener serving `endpoint` with the configured limits: uvicorn's `http` setting, called per
    connection; `limit`: requests in progress past which requests get 503 at once; `tls`: the listener
    terminates TLS with this context; `max_connections`: the listener's connection cap
    (server.max_connections when None); `listener`: the cap's metric label."""
    evicted = CONNECTIONS_EVICTED.labels(listener).inc
    cap = ConnectionLimit(server.max_connections if max_connections is None else max_connections, evicted)
    return HttpListener(endpoint, server, limit, cap, tls)
