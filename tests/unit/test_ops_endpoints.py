"""The operations endpoint through the HTTP protocol: GET (and HEAD) on three paths, nothing else."""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.server import ServerState

from bridge.config import ServerSettings
from bridge.http_message import json_answer
from bridge.http_protocol import http_listener
from bridge.ops_endpoints import METRICS_CONTENT_TYPE, OpsEndpoints, metrics_answer, readiness_answer
from tests.recording_transport import RecordingTransport


def serve(endpoints: OpsEndpoints, request: bytes) -> tuple[int, dict[bytes, bytes], bytes, bool]:
    """`request` through a fresh connection; the answer and whether the connection was closed."""

    async def scenario() -> tuple[int, dict[bytes, bytes], bytes, bool]:
        loop = asyncio.get_running_loop()
        protocol = http_listener(ServerSettings(), endpoints, limit=64)(ServerState(), loop)
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        while (answer := transport.answer()) is None:
            await asyncio.sleep(0)
        return (*answer, transport.closed)

    return asyncio.run(scenario())


def endpoints(ready: bool = True) -> OpsEndpoints:
    return OpsEndpoints(
        {
            "/healthz": lambda: json_answer(200, {"status": "alive"}),
            "/readyz": lambda: readiness_answer({"ready": ready, "spooled_records": 0}),
            "/metrics": lambda: metrics_answer(b"# HELP x\nx 1\n"),
        }
    )


def test_each_path_answers_get_with_its_document() -> None:
    status, headers, body, closed = serve(endpoints(), b"GET /healthz HTTP/1.1\r\nHost: ops\r\n\r\n")
    assert (status, orjson.loads(body), headers[b"content-type"], closed) == (
        200,
        {"status": "alive"},
        b"application/json",
        False,
    )
    status, headers, body, _ = serve(endpoints(), b"GET /metrics HTTP/1.1\r\nHost: ops\r\n\r\n")
    assert (status, body, headers[b"content-type"]) == (200, b"# HELP x\nx 1\n", METRICS_CONTENT_TYPE)


def test_readyz_answers_503_with_the_same_document_when_not_ready() -> None:
    status, _, body, _ = serve(endpoints(ready=False), b"GET /readyz HTTP/1.1\r\nHost: ops\r\n\r\n")
    assert (status, orjson.loads(body)) == (503, {"ready": False, "spooled_records": 0})
    status, _, _, _ = serve(endpoints(ready=True), b"GET /readyz HTTP/1.1\r\nHost: ops\r\n\r\n")
    assert status == 200


def test_other_paths_get_404_and_other_methods_405_naming_the_allowed_ones() -> None:
    status, _, body, _ = serve(endpoints(), b"GET /webhooks/prod HTTP/1.1\r\nHost: ops\r\n\r\n")
    assert status == 404 and b"/healthz, /readyz and /metrics" in body
    status, headers, _, _ = serve(endpoints(), b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert status == 405 and headers[b"allow"] == b"GET, HEAD"


def test_head_gets_the_headers_of_get_without_the_body() -> None:
    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        protocol = http_listener(ServerSettings(), endpoints(), limit=64)(ServerState(), loop)
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(b"HEAD /metrics HTTP/1.1\r\nHost: ops\r\n\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        return bytes(transport.written)

    written = asyncio.run(scenario())
    assert written.startswith(b"HTTP/1.1 200 OK\r\n") and written.endswith(b"\r\n\r\n")
    assert b"content-length: 13\r\n" in written
