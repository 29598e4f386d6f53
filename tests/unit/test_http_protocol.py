"""The HTTP protocol's head budget, deadlines and early-answer closing, driven through the protocol class
with a recording transport (the e2e module test_hostile_transport.py attacks the real daemon)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from bridge.auth import MAX_SIGNATURE_HEADER_BYTES
from bridge.config import ServerSettings
from bridge.http_protocol import BODY_EXTENSION, GuardedHttpProtocol, protocol_class

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8443)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    @property
    def text(self) -> str:
        return self.written.decode("latin-1")


class App:
    """Answers 200 after reading the whole body, or at once without reading it (`early`)."""

    def __init__(self, early: bool = False) -> None:
        self.early = early
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        if not self.early:
            while (await receive()).get("more_body"):
                pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def connect(
    app: App, **limits: Any
) -> tuple[GuardedHttpProtocol, RecordingTransport, asyncio.AbstractEventLoop]:
    settings = replace(ServerSettings(), **limits)
    config = Config(app, http=protocol_class(settings), ws="none", log_config=None, lifespan="off")
    config.load()
    loop = asyncio.get_running_loop()
    protocol = config.http_protocol_class(  # type: ignore[call-arg]
        config=config, server_state=ServerState(), app_state={}, _loop=loop
    )
    assert isinstance(protocol, GuardedHttpProtocol)
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


def test_bytes_on_an_idle_keep_alive_connection_start_the_head_deadline() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(App(), header_read_timeout_seconds=0.05)
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200") and not transport.closed
        protocol.data_received(b"\r\n")  # cancels uvicorn's keep-alive timer without starting a request
        await asyncio.sleep(0.1)
        assert transport.closed and transport.text.count("HTTP/1.1 408") == 1

    run(scenario)


class Stuck(App):
    """Never answers and never reads the body: only a deadline ends its connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.Event().wait()


def test_a_body_nobody_reads_is_closed_at_the_body_deadline() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(Stuck())
        protocol.body_timeout = 0.05  # the configured body deadline plus the backstop's grace, shortened
        protocol.data_received(HEAD + b"Content-Length: 100\r\n\r\n{")
        await asyncio.sleep(0.2)
        assert transport.closed and transport.written == b""
        protocol.connection_lost(None)

    run(scenario)


def test_a_body_trickling_in_does_not_move_the_body_deadline() -> None:
    async def scenario() -> None:
        protocol, transport, _ = connect(Stuck())
        protocol.body_timeout = 0.3
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
        protocol.body_timeout = 0.05
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert transport.text.startswith("HTTP/1.1 200")
        await asyncio.sleep(0.2)  # neither a body deadline nor a head deadline closes the idle connection
        assert not transport.closed
        protocol.connection_lost(None)

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


def test_the_scope_tells_whether_the_whole_body_has_arrived() -> None:
    """The receiver reads a body that arrived whole without a deadline; one still arriving gets its own."""
    seen: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        extension = scope["extensions"][BODY_EXTENSION]
        seen.append(extension["arrived"])
        while (await receive()).get("more_body"):
            seen.append(extension["arrived"])
        seen.append(extension["arrived"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> None:
        protocol, transport, _ = connect(app)  # type: ignore[arg-type]
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{}")
        await settle()
        assert seen == [True, True] and transport.text.startswith("HTTP/1.1 200")
        seen.clear()
        protocol.data_received(HEAD + b"Content-Length: 2\r\n\r\n{")
        await settle()
        assert seen == [False, False]
        protocol.data_received(b"}")
        await settle()
        assert seen == [False, False, True] and transport.text.count("HTTP/1.1 200") == 2

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
