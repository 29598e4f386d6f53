"""`idaas-bridge serve`: the webhook listener and the operations listener (bridge/servers.py), as uvicorn
servers in one process."""

from __future__ import annotations

import argparse
import ssl
from typing import Any, Final, cast

from bridge.cli.command import Command
from bridge.config import Settings

#: Modern AEAD suites only for TLS 1.2 (TLS 1.3 suites are fixed by OpenSSL).
TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"
#: Connections the operations listener holds at once: a few probes and scrapers, never a crowd.
OPS_CONNECTION_LIMIT: Final = 64


def serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from bridge import heap, logs
    from bridge.app import Bridge, create_app, create_ops_app
    from bridge.http_protocol import protocol_class
    from bridge.servers import OpsServer, PublicServer, bind

    logs.configure(settings.logging.level)
    server = settings.server
    public_socket = bind(server.host, server.port, "server.port")
    ops_socket = bind(server.ops_host, server.ops_port, "server.ops_port")
    bridge = Bridge(settings)
    bridge.check_topics()
    common: dict[str, Any] = {
        # uvicorn annotates its timeouts as int but uses them as asyncio delays: fractions work, and int()
        # would cut them (0.5 s of keep-alive became 0: none at all).
        "timeout_keep_alive": server.keep_alive_timeout_seconds,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "http": protocol_class(server),
        "ws": "none",
        "proxy_headers": False,
    }
    public = uvicorn.Config(
        create_app(bridge),
        ssl_certfile=server.tls_cert_file or None,
        ssl_keyfile=server.tls_key_file or None,
        ssl_ciphers=TLS12_CIPHERS,
        # The receiver answers 503 + Retry-After past limit_concurrency requests; this is the backstop
        # for connections (uvicorn answers a bare 503 past it).
        limit_concurrency=2 * server.limit_concurrency,
        # The in-flight phase of the shutdown budget: it starts at SIGTERM, with the whole budget left.
        timeout_graceful_shutdown=cast(int, server.shutdown_grace_seconds),
        **common,
    )
    public.load()
    if public.ssl is not None:
        public.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    ops = uvicorn.Config(
        create_ops_app(bridge),
        lifespan="off",
        limit_concurrency=OPS_CONNECTION_LIMIT,
        timeout_graceful_shutdown=1,
        **common,
    )
    handshake = server.tls_handshake_timeout_seconds
    ops_server = OpsServer(ops, ops_socket, handshake)
    heap.settle_after_startup()
    PublicServer(public, public_socket, handshake, bridge, ops_server).run()
    return 0


COMMAND = Command(
    name="serve",
    summary="run the webhook receiver",
    description="Receive IDaaS webhooks, verify them and publish them to Kafka (the container's command).",
    add_arguments=lambda parser: None,
    run=serve,
)
