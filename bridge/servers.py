"""The bridge's two listeners, in one process and one event loop, sharing one Bridge.

The public listener answers only POST /webhooks/<name> (TLS, reached through the ingress); the operations
listener serves /metrics, /readyz and /healthz on an internal port, so probes and scrapes never compete with
deliveries for connections and nobody on the Internet can read the metrics. The public server owns the
lifespan and the signals and runs the operations server inside its own start-up and shutdown: probes are
answered from the first delivery until the spool is closed, and /readyz reports the shutdown.

uvicorn runs each listener (its sockets' lifecycle, the signals, the lifespan, the graceful shutdown, the
Date header) with the bridge's own HTTP protocol (bridge/http_protocol.py), which hands each request to the
listener's endpoint: the webhook receiver, or the operations endpoints.

The sockets are bound here rather than by uvicorn, so that a port in use is a start-up error naming the
setting. The listeners accept plain TCP: the protocol runs each connection's TLS handshake itself, with its
own deadline, so that a connection counts against the listener's connection cap from its accept
(bridge/http_protocol.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from types import FrameType
from typing import Any, Final, cast

import uvicorn
from starlette.types import ASGIApp

from bridge import heap, open_files
from bridge.app import Bridge
from bridge.config import ConfigError, ServerSettings, Sources
from bridge.http_message import Endpoint
from bridge.http_protocol import HttpListener, http_listener

log = logging.getLogger(__name__)

#: Modern AEAD suites only for TLS 1.2 (TLS 1.3 suites are fixed by OpenSSL).
TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"
#: Requests the operations listener serves at once: a few probes and scrapers, never a crowd.
OPS_REQUEST_LIMIT: Final = 64
#: Connections the operations listener holds open (past it, the one idle longest is closed).
OPS_CONNECTION_LIMIT: Final = 4 * OPS_REQUEST_LIMIT


def _common(listener: HttpListener) -> dict[str, Any]:
    return {
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "http": listener,
        "ws": "none",
        "proxy_headers": False,
    }


def tls_context(server: ServerSettings, sources: Sources) -> ssl.SSLContext:
    """The webhook listener's TLS: TLS 1.2 or later, AEAD suites only, the configured certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    try:
        context.load_cert_chain(server.tls_cert_file, server.tls_key_file)
    except ssl.SSLError as exc:  # the files exist (configuration checked that) but do not make a pair
        # OpenSSL names a mismatch (KEY_VALUES_MISMATCH); a file it cannot parse gets no reason.
        reason = exc.reason.lower().replace("_", " ") if exc.reason else "one is not in PEM form"
        raise ConfigError(
            f"{sources.name('server.tls_cert_file', server.tls_cert_file)}, "
            f"{sources.name('server.tls_key_file', server.tls_key_file)}: cannot load them as a certificate "
            f"and its private key ({reason}); "
            "give the PEM certificate (chain) and the unencrypted PEM private key that belongs to it"
        ) from None
    return context


def public_config(
    app: ASGIApp, endpoint: Endpoint, server: ServerSettings, sources: Sources
) -> uvicorn.Config:
    """The webhook listener's uvicorn configuration (loaded); `app` carries the lifespan."""
    tls = tls_context(server, sources) if server.tls else None
    # The receiver answers 503 + Retry-After past limit_concurrency requests; past twice that many
    # requests in progress the protocol does, before any request reaches the receiver.
    connections = open_files.connections_allowed(
        server.max_connections, OPS_CONNECTION_LIMIT, sources.name("server.max_connections")
    )
    listener = http_listener(server, endpoint, 2 * server.limit_concurrency, tls, connections)
    public = uvicorn.Config(
        app,
        # The in-flight phase of the shutdown budget: it starts at SIGTERM, with the whole budget left.
        timeout_graceful_shutdown=cast(int, server.shutdown_grace_seconds),
        **_common(listener),
    )
    public.load()
    return public


async def _no_lifespan(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the operations listener runs no lifespan and passes no request to an application")


def ops_config(endpoint: Endpoint, server: ServerSettings) -> uvicorn.Config:
    """The operations listener's uvicorn configuration."""
    listener = http_listener(
        server, endpoint, OPS_REQUEST_LIMIT, max_connections=OPS_CONNECTION_LIMIT, listener="operations"
    )
    return uvicorn.Config(_no_lifespan, lifespan="off", timeout_graceful_shutdown=1, **_common(listener))


def bind(host: str, port: int, setting: str, reuse_port: bool = False) -> socket.socket:
    """A listening socket on host:port; `setting` names the port's setting in the error, as Sources.name
    does (with its value and where it came from)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, reuse_port=reuse_port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"{setting}: cannot listen on {host}:{port}: {reason}") from None


def bind_group(host: str, port: int, setting: str, count: int) -> list[socket.socket]:
    """`count` listening sockets on host:port, one per worker, sharing the port with SO_REUSEPORT: the
    kernel hashes each new connection (client address and port) to one of them, so keep-alive connections
    opened at once spread evenly. On one shared socket, the worker that woke first accepted every
    connection waiting, which left the other worker few of them.

    A plain bind comes first and is released: SO_REUSEPORT alone would let another process of the same user
    already serving the port (a second bridge) share it silently, where it must be the usual precise error.
    One socket (server.workers = 1) is the plain one.
    """
    if count == 1:
        return [bind(host, port, setting)]
    probe = bind(host, port, setting)
    port = probe.getsockname()[1]  # port 0: the group takes the port the probe was given
    probe.close()
    return [bind(host, port, setting, reuse_port=True) for _ in range(count)]


class Listener(uvicorn.Server):
    """A uvicorn server on a socket bound in advance."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config)
        self.sock = sock
        self._trimming: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan and the server state; the listener is ours
        config = self.config
        loop = asyncio.get_running_loop()

        listener = cast(HttpListener, config.http_protocol_class)
        server: asyncio.Server | None = None

        def listening() -> bool:
            return server is None or server.is_serving()  # None: accepted while create_server returns

        def connection() -> asyncio.BaseProtocol:
            # uvloop calls a protocol's methods by name (HttpProtocol derives from no asyncio class).
            return cast(asyncio.BaseProtocol, listener(self.server_state, loop, listening))

        server = await loop.create_server(connection, sock=self.sock, backlog=config.backlog)
        self.servers.append(server)
        self._trimming = loop.create_task(heap.trim_after_floods(listener.connection_limit))
        host, port = self.sock.getsockname()[:2]
        scheme = "http" if listener.tls_context is None else "https"
        log.info(f"listening on {scheme}://{host}:{port}")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._trimming is not None:
            self._trimming.cancel()
        await super().shutdown(sockets)


def _not_shutting_down(record: logging.LogRecord) -> bool:
    return record.msg != "Shutting down"


class OpsServer(Listener):
    """The operations listener: started and stopped by the public server, which handles the signals."""

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's serve() without the signals (the public server's) and without its lines about the
        process, "Started server process" and "Finished server process": the public server, in the same
        process, logs them once."""
        self.config.load()
        self.lifespan = self.config.lifespan_class(self.config)
        await self.startup(sockets)
        await self.main_loop()
        await self.shutdown(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown() without its "Shutting down" line: the public server logged it when the
        shutdown began, and stops this listener only at its end, when nothing else logs that line."""
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addFilter(_not_shutting_down)
        try:
            await super().shutdown(sockets)
        finally:
            uvicorn_log.removeFilter(_not_shutting_down)


class PublicServer(Listener):
    """The webhook listener. It tells the bridge the moment SIGTERM arrives, so /readyz turns false at once
    and the shutdown budget starts (uvicorn then stops accepting, lets in-flight requests finish and runs
    the lifespan shutdown, all within that budget), and keeps the operations listener up until all of that
    is done; the operations listener then gets what is left of the budget, at most its own 1 s. A worker
    (server.workers above 1) has no operations listener: the serving process runs it."""

    def __init__(
        self,
        config: uvicorn.Config,
        sock: socket.socket,
        bridge: Bridge,
        ops: OpsServer | None,
    ) -> None:
        super().__init__(config, sock)
        self.bridge = bridge
        self.ops = ops
        self._ops_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.bridge.begin_shutdown()
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.ops is not None:
            self._ops_task = asyncio.create_task(self.ops.serve())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self.ops is None:
            return
        ops = self.ops.config
        left = min(ops.timeout_graceful_shutdown or 0, self.bridge.shutdown.remaining())
        ops.timeout_graceful_shutdown = cast(int, left)  # an asyncio delay: fractions work (see cli/serve.py)
        self.ops.should_exit = True
        if self._ops_task is not None:
            await self._ops_task
