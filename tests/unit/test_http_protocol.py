"""The HTTP protocol's head budget, deadlines, early-answer closing, keep-alive and pipelining, driven through
the protocol class with a recording transport (the e2e module test_hostile_transport.py attacks the real
daemon)."""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
import uvloop
from prometheus_client import REGISTRY
from uvicorn.server import ServerState

from bridge.auth import MAX_SIGNATURE_HEADER_BYTES
from bridge.config import ServerSettings
from bridge.http_message import Answer, ClientDisconnect, Request
from bridge.http_protocol import (
    BODY_HIGH_WATER_BYTES,
    MAX_PIPELINED_REQUESTS,
    HttpProtocol,
    http_listener,
)
from tests.fake_admin_api import tls_certificate
from tests.recording_transport import RecordingTransport

OK: Answer = Answer(200, b"ok", b"text/plain")


class App:
    """Answers 200 after reading the whole body, or at once without reading it (`early`)."""

    headers = frozenset({b"content-length", b"x-id"})

    def __init__(self, early: bool = False) -> None:
        self.early = early
        self.calls = 0
        self.requests: list[Request] = []

    async def handle(self, request: Request) -> Answer | None:
        self.calls += 1
        self.requests.append(request)
        if not self.early:
            await request.body(1_000_000)
        return OK


def connect(
    app: Any, limit: int = 1000, **limits: Any
) -> tuple[HttpProtocol, RecordingTransport, asyncio.AbstractEventLoop]:
    settings = replace(ServerSettings(), **limits)
    loop = asyncio.get_running_loop()
    protocol = http_listener(settings, app, limit)(ServerState(), loop)
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport, loop


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


HEAD = b"POST /webhooks/prod HTTP/1.1\r\nHost: bridge\r\n"


def test_a_head_within_the_budget_is_served_and_keeps_the_connection() -> None:
    async def scenario() -> None:
        app = App()
        protocol, transport, _ = connect(app)
        protocol.data_received(HEAD + b"X-Pad: " + b"p" * 15_000 + b"\r\nContent-Length: 2\r\n\r\n{}")
        await settle()
        assert app.calls == 1 and transport.text.startswith("HTTP/1.1 200")
        assert "connection: close" not in transport.text and not transport.closed

    run(scenario)


def test_a_head_streamed_past_the_byte_budget_gets_431_before_the_parser_takes_more() -> None:
    async def scenario() -> None:
        app = App()
        protocol, transport, _ = connect(app, max_header_bytes=4096)
        protocol.data_received(HEAD + b"X-Big: ")
        sent = len(HEAD) + 7
        while sent <= 4096:  # one header value that never ends, 100 bytes at a time
            assert not transport.closed
            protocol.data_received(b"a" * 100)
            sent += 100
        assert transport.text.startswith("HTTP/1.1 431 Request Header Fields Too Large\r\n")
        assert "connection: close" in transport.text and "limited to 4096 bytes" in transport.text
        assert transport.closed and app.calls == 0
        answered = len(transport.written)
        protocol.data_received(b"a" * 10_000)  # nothing more is read or answered
        assert len(transport.written) == answered

    run(scenario)


def test_one_large_read_is_cut_at_the_budget() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(App(), max_header_bytes=4096)
        protocol.data_received(HEAD + b"Content-Digest: " + b"a" * (4 * 1024 * 1024) + b"\r\n\r\n")
        assert transport.text.startswith("HTTP/1.1 431") and transport.closed

    run(scenario)


def test_a_head_that_begins_in_the_read_ending_a_body_is_cut_at_the_budget_too() -> None:
    """The head after a body was fed with the rest of the body's read, uncounted: a 200 KiB header value
    sat in the parser until the head deadline."""

    async def scenario() -> None:
        protocol, transport, _ = connect(App(early=True), max_header_bytes=4096)
        body = b"{" + b" " * 19_999
        protocol.data_received(
            HEAD + b"Content-Length: 20000\r\n\r\n" + body + HEAD + b"X-Big: " + b"a" * 200_000
        )
        assert transport.closed  # at the budget, in this read (no 431: the first answer is still due)

    run(scenario)


def test_too_many_header_fields_get_431() -> None:
    async def scenario() -> None:
        app = App()
        protocol, transport, _ = connect(app, max_header_fields=20)
        fields = b"".join(b"X-%d: 1\r\n" % index for index in range(20))  # 21 with Host
        protocol.data_received(HEAD + fields + b"\r\n")
        assert transport.text.startswith("HTTP/1.1 431") and "limited to 20 header fields" in transport.text
        assert transport.closed and app.calls == 0

    run(scenario)


@pytest.mark.parametrize("name", ["Content-Digest", "Signature-Input", "Signature", "X-SHA2-Signature"])
def test_a_signature_header_over_its_cap_gets_431_naming_it(name: str) -> None:
    async def scenario() -> None:
        app = App()
        protocol, transport, _ = connect(app)
        value = b"a" * (MAX_SIGNATURE_HEADER_BYTES + 1)
        protocol.data_received(HEAD + name.encode() + b": " + value + b"\r\n\r\n")
        assert transport.text.startswith("HTTP/1.1 431")
        assert f"the {name} header is limited to {MAX_SIGNATURE_HEADER_BYTES} bytes" in transport.text
        assert transport.closed and app.calls == 0

    run(scenario)


def test_the_signature_cap_sums_repeated_fields_and_allows_its_exact_size() -> None:
    async def scenario() -> None:
        half = b"a" * (MAX_SIGNATURE_HEADER_BYTES // 2)
        app = App()
        protocol, transport, _ = connect(app)
        protocol.data_received(HEAD + b"Signature: " + half + b"\r\nSignature: " + half + b"\r\n\r\n")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200") and app.calls == 1

        app = App()
        protocol, transport, _ = connect(app)
        protocol.data_received(HEAD + b"Signature: " + half + b"\r\nsignature: " + half + b"a\r\n\r\n")
        assert transport.text.startswith("HTTP/1.1 431") and app.calls == 0

    run(scenario)


def test_the_budget_applies_to_each_request_of_a_keep_alive_connection() -> None:
    async def scenario() -> None:
        app = App()
        protocol, transport, _ = connect(app, max_header_bytes=4096)
        request = HEAD + b"X-Pad: " + b"p" * 3000 + b"\r\nContent-Length: 2\r\n\r\n{}"
        for _ in range(3):
            protocol.data_received(request)
            await settle()
        assert transport.text.count("HTTP/1.1 200") == 3 and not transport.closed

    run(scenario)


def test_an_answer_before_the_body_arrived_closes_the_connection() -> None:
    async def scenario() -> None:
        app = App(early=True)
        protocol, transport, _ = connect(app)
        protocol.data_received(HEAD + b"Content-Length: 100\r\n\r\n{")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200") and "connection: close\r\n" in transport.text
        assert transport.closed

    run(scenario)


def test_an_answer_after_the_whole_body_keeps_the_connection_even_if_unread() -> None:
    async def scenario() -> None:
        app = App(early=True)
        protocol, transport, _ = connect(app)
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200") and "connection: close" not in transport.text
        assert not transport.closed

    run(scenario)


def test_a_silent_connection_and_a_slow_head_get_408() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(App(), header_read_timeout_seconds=0.05)
        await asyncio.sleep(0.1)
        assert transport.text.startswith("HTTP/1.1 408") and "header_timeout" in transport.text
        assert transport.closed

        protocol, transport, _ = connect(App(), header_read_timeout_seconds=0.05)
        protocol.data_received(HEAD)
        await asyncio.sleep(0.1)
        assert transport.text.startswith("HTTP/1.1 408") and transport.closed

    run(scenario)


def test_a_keep_alive_timeout_shorter_than_the_head_deadline_does_not_cut_a_head_short() -> None:
    # A connection's first timer fires by the keep-alive timeout; before the head's deadline it only re-arms.
    async def scenario() -> None:
        protocol, transport, _ = connect(
            App(), header_read_timeout_seconds=1.0, keep_alive_timeout_seconds=0.05
        )
        await asyncio.sleep(0.15)
        protocol.data_received(HEAD)
        await asyncio.sleep(0.1)
        assert transport.text == "" and not transport.closed
        await asyncio.sleep(1.0)
        assert transport.text.startswith("HTTP/1.1 408") and transport.closed

    run(scenario)


def test_bytes_on_an_idle_keep_alive_connection_start_the_head_deadline() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(App(), header_read_timeout_seconds=0.05)
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200") and not transport.closed
        protocol.data_received(b"\r\n")  # cancels the keep-alive timer without starting a request
        await asyncio.sleep(0.1)
        assert transport.closed and transport.text.count("HTTP/1.1 408") == 1

    run(scenario)


class Stuck(App):
    """Never answers and never reads the body: only a deadline ends its connection."""

    async def handle(self, request: Request) -> Answer | None:
        self.calls += 1
        await asyncio.Event().wait()
        return None


def test_a_body_nobody_reads_is_closed_at_the_body_deadline() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(Stuck())
        # The configured body deadline plus the backstop's grace, shortened.
        protocol.listener.body_timeout = 0.05
        protocol.data_received(HEAD + b"Content-Length: 100\r\n\r\n{")
        await asyncio.sleep(0.2)
        assert transport.closed and transport.written == b""
        protocol.connection_lost(None)

    run(scenario)


def test_a_body_trickling_in_does_not_move_the_body_deadline() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(Stuck())
        protocol.listener.body_timeout = 0.3
        protocol.data_received(HEAD + b"Content-Length: 100\r\n\r\n{")
        for _ in range(15):  # a byte every 0.05 s for 0.75 s: each read ends mid-body
            await asyncio.sleep(0.05)
            protocol.data_received(b" ")
        assert transport.closed
        protocol.connection_lost(None)

    run(scenario)


def test_a_request_whose_body_arrived_with_its_head_leaves_no_deadline_armed() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(App())
        protocol.listener.body_timeout = 0.05
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200")
        await asyncio.sleep(0.2)  # neither a body deadline nor a head deadline closes the idle connection
        assert not transport.closed
        protocol.connection_lost(None)

    run(scenario)


def test_a_pipelined_body_gets_its_deadline_when_served_not_while_it_waits() -> None:
    """Reading pauses while a pipelined request waits, so its body cannot arrive then: its deadline ran
    anyway, and closed the connection under the answer to the request before it."""

    class SlowFirst(App):
        async def handle(self, request: Request) -> Answer | None:
            await request.body(1000)
            if self.calls == 0:
                await asyncio.sleep(0.4)  # longer than the body deadline
            self.calls += 1
            return OK

    async def scenario() -> None:
        protocol, transport, _ = connect(SlowFirst())
        protocol.listener.body_timeout = 0.2
        first = HEAD + b"Content-Length: 2\r\n\r\n{}"
        protocol.data_received(first + HEAD + b"Content-Length: 2\r\n\r\n{")  # the second's body: half
        await asyncio.sleep(0.5)
        assert transport.text.count("HTTP/1.1 200") == 1 and not transport.closed and transport.reading
        protocol.data_received(b"}")
        await settle()
        assert transport.text.count("HTTP/1.1 200") == 2 and not transport.closed

        protocol, transport, _ = connect(SlowFirst())  # once served, its deadline runs
        protocol.listener.body_timeout = 0.2
        protocol.data_received(first + HEAD + b"Content-Length: 2\r\n\r\n{")
        await asyncio.sleep(0.8)
        assert transport.text.count("HTTP/1.1 200") == 1 and transport.closed

    run(scenario)


def test_junk_refused_and_slow_heads_are_logged_at_debug_with_the_peer_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(App())
        protocol.data_received(b"\x16\x03\x01 not http at all\r\n\r\n")
        assert transport.text.startswith("HTTP/1.1 400") and transport.closed

        protocol, transport, _ = connect(App(), max_header_fields=16)
        protocol.data_received(HEAD + b"".join(b"X-%d: 1\r\n" % index for index in range(20)) + b"\r\n")
        assert transport.text.startswith("HTTP/1.1 431") and transport.closed

        protocol, transport, _ = connect(App(), header_read_timeout_seconds=0.05)
        await asyncio.sleep(0.1)
        assert transport.text.startswith("HTTP/1.1 408") and transport.closed

    with caplog.at_level(logging.DEBUG):
        run(scenario)
    refusals = [
        record for record in caplog.records if record.getMessage() == "request refused by the transport"
    ]
    assert [(r.levelno, r.status, r.peer) for r in refusals] == [  # type: ignore[attr-defined]
        (logging.DEBUG, 400, "127.0.0.1:40000"),
        (logging.DEBUG, 431, "127.0.0.1:40000"),
        (logging.DEBUG, 408, "127.0.0.1:40000"),
    ]
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_the_request_tells_whether_the_whole_body_has_arrived() -> None:
    """The receiver reads a body that arrived whole without a deadline; one still arriving gets its own."""
    seen: list[bool] = []

    class Watching(App):
        async def handle(self, request: Request) -> Answer | None:
            seen.append(request.arrived)
            body = await request.body(1000)
            seen.append(request.arrived)
            return Answer(200, body, b"text/plain")

    async def scenario() -> None:
        protocol, transport, _ = connect(Watching())
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert seen == [True, True] and transport.text.startswith("HTTP/1.1 200")
        seen.clear()
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{")
        await settle()
        assert seen == [False]
        protocol.data_received(b"}")
        await settle()
        assert seen == [False, True] and transport.text.count("HTTP/1.1 200") == 2
        assert transport.text.endswith("\r\n\r\n{}")

    run(scenario)


def test_serving_requests_leaves_nothing_for_the_cyclic_garbage_collector() -> None:
    """bridge/heap.py makes collections rare; a reference cycle per request (e.g. a closure over the request
    cycle stored in its own scope) would make them frequent and costly again."""

    async def scenario() -> None:
        protocol, transport, _ = connect(App())
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
                await settle()
            assert gc.collect() == 0
        finally:
            gc.enable()
        assert transport.text.count("HTTP/1.1 200") == 21

    run(scenario)


def test_pipelined_requests_are_answered_one_at_a_time_in_order() -> None:
    class Slow(App):
        async def handle(self, request: Request) -> Answer | None:
            await request.body(1000)
            await asyncio.sleep(0.01 if request.header("x-id") == "1" else 0)
            return Answer(200, request.header("x-id").encode(), b"text/plain")  # type: ignore[union-attr]

    async def scenario() -> None:
        protocol, transport, _ = connect(Slow())
        first = HEAD + b"X-Id: 1\r\nContent-Length: 2\r\n\r\n{}"
        second = HEAD + b"X-Id: 2\r\nContent-Length: 2\r\n\r\n{}"
        protocol.data_received(first + second)
        await settle()
        assert transport.text.count("HTTP/1.1 200") == 0 and not transport.reading  # the second waits
        await asyncio.sleep(0.05)
        assert transport.text.count("HTTP/1.1 200") == 2 and transport.reading
        assert transport.text.index("\r\n\r\n1") < transport.text.index("\r\n\r\n2")
        assert not transport.closed

    run(scenario)


def test_one_read_of_many_pipelined_requests_queues_a_few_and_closes_after_answering_them() -> None:
    """Pausing reading takes effect at the next read: without a cap, the requests of one read all queued."""

    async def scenario() -> None:
        app = App()
        protocol, transport, _ = connect(app)
        request = b"POST /webhooks/a HTTP/1.1\r\n\r\n"
        protocol.data_received(request * 1000)
        assert not transport.reading
        protocol.data_received(request * 1000)  # nothing more is parsed
        await asyncio.sleep(0.05)
        answered = MAX_PIPELINED_REQUESTS + 1
        assert app.calls == answered and transport.text.count("HTTP/1.1 200") == answered
        assert transport.text.count("connection: close") == 1 and transport.text.endswith("close\r\n\r\nok")
        assert transport.closed and not transport.reading

    run(scenario)


def test_a_large_body_the_endpoint_reads_is_read_without_pausing() -> None:
    """Reading pauses for a body that piles up unasked; one the endpoint waits for is read on. (A copy of
    the reading rule in the body hook paused and resumed reading once per read past the high-water mark.)"""

    async def scenario() -> None:
        app = App()
        protocol, transport, _ = connect(app)
        size = 8 * BODY_HIGH_WATER_BYTES
        protocol.data_received(HEAD + b"Content-Length: %d\r\n\r\n" % size)
        await settle()
        assert app.calls == 1  # the endpoint waits for the body
        for _ in range(8):
            protocol.data_received(b" " * BODY_HIGH_WATER_BYTES)
            await settle()
        assert transport.text.startswith("HTTP/1.1 200") and transport.pauses == 0

        protocol, transport, _ = connect(App(early=True))  # asks for nothing: the body does not pile up
        protocol.data_received(
            HEAD + b"Content-Length: %d\r\n\r\n" % size + b" " * (2 * BODY_HIGH_WATER_BYTES)
        )
        assert not transport.reading

    run(scenario)


def test_a_body_request_does_not_resume_a_connection_whose_pipeline_is_full() -> None:
    """One rule decides whether to read, whoever asks: the body hook the protocol hands every request
    resumed reading by its own copy of the rule, which left out the full pipeline, so the last queued
    request's hook read on past the request the parser had stopped at. (No request can ask for its body in
    that state today, every queued request being complete, so the hook is called directly.)"""

    class HoldsTheLast(App):
        def __init__(self) -> None:
            super().__init__()
            self.last = asyncio.Event()
            self.release = asyncio.Event()

        async def handle(self, request: Request) -> Answer | None:
            answer = await super().handle(request)
            if self.calls == MAX_PIPELINED_REQUESTS + 1:
                self.last.set()
                await self.release.wait()
            return answer

    async def scenario() -> None:
        app = HoldsTheLast()
        protocol, transport, _ = connect(app)
        protocol.data_received(b"POST /webhooks/a HTTP/1.1\r\n\r\n" * 100)
        await asyncio.wait_for(app.last.wait(), 5)  # the last queued request is served, none waits
        assert not transport.reading
        protocol._body_wanted()
        assert not transport.reading
        app.release.set()
        await settle()
        assert transport.text.count("HTTP/1.1 200") == MAX_PIPELINED_REQUESTS + 1 and transport.closed

    run(scenario)


def test_past_max_connections_the_connection_idle_longest_is_aborted_never_one_with_a_request() -> None:
    """The listener's cap (server.max_connections): a new connection past it aborts the one idle longest;
    a connection with a request in progress is not idle, and one whose answer went out is the most recently
    active."""

    async def scenario() -> None:
        app = App()
        listener = http_listener(ServerSettings(), app, 1000, max_connections=2)
        loop = asyncio.get_running_loop()
        state = ServerState()

        def open_connection() -> tuple[HttpProtocol, RecordingTransport]:
            protocol, transport = listener(state, loop), RecordingTransport()
            protocol.connection_made(transport)
            return protocol, transport

        busy, busy_transport = open_connection()
        busy.data_received(HEAD + b"Content-Length: 2\r\n\r\n")  # its body is still to come
        idle, idle_transport = open_connection()
        answered, answered_transport = open_connection()
        assert idle_transport.aborted and not busy_transport.closed and not answered_transport.closed
        idle.connection_lost(None)
        answered.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert answered_transport.text.startswith("HTTP/1.1 200") and not answered_transport.closed
        busy.data_received(b"{}")  # answered after `answered`: now the most recently active one
        await settle()
        assert busy_transport.text.startswith("HTTP/1.1 200")
        _, newest_transport = open_connection()
        assert answered_transport.aborted and not busy_transport.closed and not newest_transport.closed
        assert listener.connection_limit.open == 2

    run(scenario)


def test_a_connection_made_after_the_listener_stopped_accepting_is_closed_at_once() -> None:
    """A TLS handshake that completes during the shutdown: uvicorn asked the connections it knew to close."""

    async def scenario() -> None:
        listener = http_listener(ServerSettings(), App(), 1000)
        for listening in (lambda: True, lambda: False):
            transport = RecordingTransport(tls=True)
            listener(ServerState(), asyncio.get_running_loop(), listening).connection_made(transport)
            assert transport.closed is not listening() and transport.written == b""

    run(scenario)


def test_a_client_that_asked_gets_100_continue_when_its_body_is_read() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(App())
        protocol.data_received(HEAD + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        await settle()
        assert transport.text == "HTTP/1.1 100 Continue\r\n\r\n"
        protocol.data_received(b"{}")
        await settle()
        assert transport.text.startswith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")

        protocol, transport, _ = connect(App(early=True))  # answered without reading: no 100 Continue
        protocol.data_received(HEAD + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200") and transport.closed

    run(scenario)


def test_a_head_request_gets_the_headers_without_the_body() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(App())
        protocol.data_received(b"HEAD /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200") and "content-length: 2\r\n" in transport.text
        assert transport.text.endswith("\r\n\r\n") and not transport.closed

    run(scenario)


def test_http_1_0_and_connection_close_end_the_connection_after_the_answer() -> None:
    async def scenario() -> None:
        for head in (b"POST /webhooks/prod HTTP/1.0\r\n", HEAD + b"Connection: close\r\n"):
            protocol, transport, _ = connect(App())
            protocol.data_received(head + b"Content-Length: 2\r\n\r\n{}")
            await settle()
            assert transport.text.startswith("HTTP/1.1 200") and "connection: close\r\n" in transport.text
            assert transport.closed

    run(scenario)


def test_an_idle_keep_alive_connection_closes_after_the_keep_alive_timeout() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(App(), keep_alive_timeout_seconds=0.05)
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200") and not transport.closed
        await asyncio.sleep(0.1)
        assert transport.closed and transport.text.count("HTTP/1.1") == 1

    run(scenario)


def test_a_client_that_does_not_read_its_last_answer_is_aborted_after_the_keep_alive_timeout() -> None:
    """close() waits for the client to read what is still buffered: a client that never reads held the
    connection (and its place under the backstop limit) forever."""

    async def scenario() -> None:
        for head in (HEAD + b"Connection: close\r\n", HEAD):  # closed after the answer, or when idle
            protocol, transport, _ = connect(App(), keep_alive_timeout_seconds=0.05)
            transport.unread = 100  # the client reads nothing
            protocol.data_received(head + b"Content-Length: 2\r\n\r\n{}")
            await settle()
            assert transport.text.startswith("HTTP/1.1 200") and not transport.aborted
            await asyncio.sleep(0.2)
            assert transport.aborted
            protocol.connection_lost(None)

        protocol, transport, _ = connect(App(), keep_alive_timeout_seconds=0.05)
        protocol.data_received(HEAD + b"Connection: close\r\nContent-Length: 2\r\n\r\n{}")
        await settle()
        assert transport.closed  # everything was handed to the kernel: a plain close, nothing to abort
        await asyncio.sleep(0.1)
        assert not transport.aborted

    run(scenario)


def on_one_listener(app: Any, count: int, limit: int) -> list[tuple[HttpProtocol, RecordingTransport]]:
    """`count` connections to one listener (one uvicorn server state) with the backstop at `limit`."""
    state, loop = ServerState(), asyncio.get_running_loop()
    listener = http_listener(ServerSettings(), app, limit)
    connections = [(listener(state, loop), RecordingTransport()) for _ in range(count)]
    for protocol, transport in connections:
        protocol.connection_made(transport)
    return connections


def test_past_the_backstop_limit_requests_get_503_with_retry_after_at_once() -> None:
    async def scenario() -> None:
        app = Stuck()
        (busy, _), (protocol, transport) = on_one_listener(app, count=2, limit=1)
        busy.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")  # the one request in progress
        await settle()
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert transport.text.startswith("HTTP/1.1 503") and "retry-after: 2" in transport.text
        assert app.calls == 1

    run(scenario)


def test_connections_without_a_request_in_progress_do_not_count_against_the_backstop() -> None:
    """Anyone can hold `limit` silent connections (a new one per header deadline): counted, they turned
    every delivery into a 503."""

    async def scenario() -> None:
        app = App()
        *silent, (protocol, transport) = on_one_listener(app, count=4, limit=2)
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200") and app.calls == 1
        assert not any(silent_transport.written for _, silent_transport in silent)

    run(scenario)


def test_an_endpoint_that_fails_gets_a_500_that_ends_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(App):
        async def handle(self, request: Request) -> Answer | None:
            raise RuntimeError("boom")

    async def scenario() -> None:
        protocol, transport, _ = connect(Failing())
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert transport.text.startswith("HTTP/1.1 500") and "connection: close" in transport.text
        assert transport.closed

    with caplog.at_level(logging.ERROR):
        run(scenario)
    assert [record.getMessage() for record in caplog.records] == ["the endpoint failed"]


def test_a_client_hanging_up_mid_body_reaches_the_endpoint_as_client_disconnect() -> None:
    outcomes: list[str] = []

    class Reading(App):
        async def handle(self, request: Request) -> Answer | None:
            try:
                await request.body(1000)
            except ClientDisconnect:
                outcomes.append("disconnect")
                return None
            return OK

    async def scenario() -> None:
        protocol, transport, _ = connect(Reading())
        protocol.data_received(HEAD + b"Content-Length: 100\r\n\r\n{")
        await settle()
        protocol.connection_lost(None)
        await settle()
        assert outcomes == ["disconnect"] and transport.written == b""

    run(scenario)


def test_shutdown_closes_idle_connections_at_once_and_busy_ones_after_their_answer() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(App())
        protocol.shutdown()
        assert transport.closed

        protocol, transport, _ = connect(App())
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{")
        await settle()
        protocol.shutdown()
        assert not transport.closed
        protocol.data_received(b"}")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200") and "connection: close" in transport.text
        assert transport.closed

    run(scenario)


def test_only_the_headers_the_endpoint_reads_are_kept_first_value_and_joined() -> None:
    async def scenario() -> None:
        app = App()
        protocol, _, _ = connect(app)
        protocol.data_received(HEAD + b"X-Id: a\r\nX-Other: b\r\nx-id: c\r\nContent-Length: 2\r\n\r\n{}")
        await settle()
        request = app.requests[0]
        assert request.header("x-id") == "a" and request.joined("x-id") == "a, c"
        assert request.header("x-other") is None and request.header("host") is None
        assert (request.method, request.path, request.raw_path, request.query) == (
            "POST",
            "/webhooks/prod",
            b"/webhooks/prod",
            b"",
        )

    run(scenario)


def test_the_keep_alive_timeout_counts_from_the_last_answer_not_the_first() -> None:
    """The connection's one timer is left armed when its deadline moves later; it must re-check, not fire."""

    async def scenario() -> None:
        protocol, transport, _ = connect(App(), keep_alive_timeout_seconds=0.2)
        request = HEAD + b"Content-Length: 2\r\n\r\n{}"
        protocol.data_received(request)
        await asyncio.sleep(0.12)
        protocol.data_received(request)  # idle again from here: until about 0.32 s
        await asyncio.sleep(0.12)  # 0.24 s: past the first answer's deadline
        assert not transport.closed and transport.text.count("HTTP/1.1 200") == 2
        await asyncio.sleep(0.2)
        assert transport.closed

    run(scenario)


class TlsServer:
    """A real uvloop server on loopback with the TLS listener's protocol, which runs the handshakes itself,
    and a client context that trusts its certificate. It counts the protocols it made and finds those still
    alive among the objects the cyclic collector tracks (a compiled class takes no weak reference)."""

    def __init__(self, directory: Path, app: Any, **settings: Any) -> None:
        cert, key = tls_certificate(directory)
        self.server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_tls.load_cert_chain(cert, key)
        self.client_tls = ssl.create_default_context(cafile=str(cert))
        self.client_tls.check_hostname = False
        limits = {key: value for key, value in settings.items() if key != "max_connections"}
        self.listener = http_listener(
            replace(ServerSettings(), **limits), app, 1000, self.server_tls, settings.get("max_connections")
        )
        self.state = ServerState()
        self.made = 0
        self.port = 0

    def connection(self) -> asyncio.BaseProtocol:
        self.made += 1
        return cast(asyncio.BaseProtocol, self.listener(self.state, asyncio.get_running_loop()))

    def alive(self) -> int:
        """This server's connections whose protocol has not been freed (reference counting frees one at
        once; one in a reference cycle waits for the collector, which the memory tests disable)."""
        return sum(
            isinstance(thing, HttpProtocol) and thing.server_state is self.state for thing in gc.get_objects()
        )

    async def start(self) -> asyncio.Server:
        server = await asyncio.get_running_loop().create_server(self.connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def post(self, pieces: int = 1) -> bytes:
        """One delivery over a new TLS connection, its request written in `pieces` separate writes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=self.client_tls)
        request = HEAD + b"Content-Length: 2\r\n\r\n{}"
        size = -(-len(request) // pieces)
        for start in range(0, len(request), size):
            writer.write(request[start : start + size])
            await writer.drain()
            await asyncio.sleep(0.01)
        answer = await reader.readuntil(b"\r\n\r\nok")
        writer.close()
        await writer.wait_closed()
        return answer

    async def until_no_connection(self) -> None:
        for _ in range(200):  # the server's end of a connection is lost a few loop turns later
            if not self.state.connections:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(self.state.connections)} connections still open")


def run_on_uvloop(scenario: Callable[[], Awaitable[None]], collector: bool = True) -> None:
    if not collector:
        gc.collect()
        gc.disable()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(scenario())
    finally:
        gc.enable()


class Forgetful(App):
    """Keeps no request (a request leads to its connection)."""

    async def handle(self, request: Request) -> Answer | None:
        await request.body(1000)
        return OK


def test_a_tls_listener_reads_through_the_lent_buffer_one_delivery_split_over_reads(tmp_path: Path) -> None:
    """uvloop lends its decrypted bytes through get_buffer/buffer_updated only to a protocol that has
    get_buffer and is not an asyncio.Protocol (uvloop's sslproto.pyx and handles/stream.pyx); the TLS
    listener's is such a buffered protocol, and the plain listener's is not. A delivery is decrypted into the
    process's one lent buffer; one written in five pieces is read whole."""
    app = App()
    tls = TlsServer(tmp_path, app)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        buffered = tls.listener(ServerState(), loop)
        assert hasattr(buffered, "get_buffer") and not isinstance(buffered, asyncio.Protocol)
        assert not hasattr(http_listener(ServerSettings(), app, 1000)(ServerState(), loop), "get_buffer")
        server = await tls.start()
        lent = buffered.get_buffer(-1)
        lent[:] = bytes(len(lent))
        assert (await tls.post()).startswith(b"HTTP/1.1 200")
        assert bytes(lent[: len(HEAD)]) == HEAD, "the request was not decrypted into the lent buffer"
        assert (await tls.post(pieces=5)).startswith(b"HTTP/1.1 200")
        assert app.calls == 2 and app.requests[1].scheme == "https"
        server.close()

    run_on_uvloop(scenario)


def test_an_ended_tls_connection_is_freed_without_the_cyclic_garbage_collector(tmp_path: Path) -> None:
    """uvloop's TLS layer keeps the buffered protocol's get_buffer and buffer_updated after the connection
    ends, and the protocol held the transport that leads to it: every TLS connection was left to the cyclic
    collector, which bridge/heap.py makes rare, with its OpenSSL state and uvloop's buffer (docs/
    benchmarks.md, ninth round). The same for a handshake that fails: the upgrade's exception held the
    protocol. A real uvloop TLS server; one client sends a request and hangs up, another sends bytes that
    are not TLS."""
    tls = TlsServer(tmp_path, Forgetful())

    async def scenario() -> None:
        server = await tls.start()
        assert (await tls.post()).startswith(b"HTTP/1.1 200")
        reader, writer = await asyncio.open_connection("127.0.0.1", tls.port)
        writer.write(HEAD + b"\r\n")  # plain HTTP to the TLS port: the handshake fails
        assert await reader.read() == b""
        writer.close()
        await tls.until_no_connection()
        await settle()
        assert tls.made == 2
        assert tls.alive() == 0, "a connection's protocol outlived it: a cycle"
        server.close()
        await server.wait_closed()

    run_on_uvloop(scenario, collector=False)


def test_a_tls_connection_that_sends_nothing_holds_no_tls_state_and_ends_at_the_handshake_deadline(
    tmp_path: Path,
) -> None:
    """The TLS layer (OpenSSL's state and uvloop's, about 40 KiB) is set up when the ClientHello arrives; a
    connection that sends nothing is closed at the handshake deadline, with nothing written to it."""
    tls = TlsServer(tmp_path, App(), tls_handshake_timeout_seconds=0.3)

    async def scenario() -> None:
        server = await tls.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", tls.port)
        await asyncio.sleep(0.1)
        (protocol,) = tls.state.connections
        assert protocol.transport is not None and protocol.transport.get_protocol() is protocol
        opened = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), 2) == b""
        assert 0.1 <= asyncio.get_running_loop().time() - opened <= 0.6
        writer.close()
        await tls.until_no_connection()
        server.close()

    run_on_uvloop(scenario)


def test_tls_connections_past_the_cap_are_closed_oldest_first_and_a_delivery_still_gets_in(
    tmp_path: Path,
) -> None:
    """Silent TCP connections to the TLS port count from their accept: past `max_connections` the one idle
    longest is closed, so a delivery on a new connection is served while the port is flooded."""
    tls = TlsServer(tmp_path, App(), max_connections=3)
    evicted = (
        REGISTRY.get_sample_value("idaas_bridge_connections_evicted_total", {"listener": "webhooks"}) or 0
    )

    async def scenario() -> None:
        server = await tls.start()
        silent = []
        for _ in range(6):
            silent.append(await asyncio.open_connection("127.0.0.1", tls.port))
            await asyncio.sleep(0.02)
        closed = [await asyncio.wait_for(reader.read(), 1) == b"" for reader, _ in silent[:3]]
        assert closed == [True, True, True]
        assert len(tls.state.connections) == 3 and tls.listener.connection_limit.open == 3
        assert (await tls.post()).startswith(b"HTTP/1.1 200")  # it closed the fourth silent connection
        assert await asyncio.wait_for(silent[3][0].read(), 1) == b""
        for reader, writer in silent[4:]:
            assert not reader.at_eof()
            writer.close()
        for _, writer in silent[:4]:
            writer.close()
        await tls.until_no_connection()
        assert tls.listener.connection_limit.open == 0
        server.close()

    run_on_uvloop(scenario)
    now = REGISTRY.get_sample_value("idaas_bridge_connections_evicted_total", {"listener": "webhooks"})
    assert now == evicted + 4


def test_an_answer_that_comes_after_the_client_hung_up_is_dropped() -> None:
    """The protocol lets go of its transport when the connection ends (above); a request whose endpoint
    answers anyway writes nothing and serves nothing after it."""
    release = asyncio.Event()

    class Late(App):
        async def handle(self, request: Request) -> Answer | None:
            self.calls += 1
            await request.body(1000)
            await release.wait()
            return OK

    async def scenario() -> None:
        app = Late()
        protocol, transport, _ = connect(app)
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}" + HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        protocol.connection_lost(None)
        release.set()
        await settle()
        assert app.calls == 1 and transport.text == "" and not transport.closed

    run(scenario)
