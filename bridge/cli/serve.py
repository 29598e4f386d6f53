"""`idaas-bridge serve`: the webhook receiver as a uvicorn server."""

from __future__ import annotations

import argparse
import ssl
from types import FrameType
from typing import Final

from bridge.cli.command import Command
from bridge.config import Settings

#: Modern AEAD suites only for TLS 1.2 (TLS 1.3 suites are fixed by OpenSSL).
TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"


def serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from bridge import heap, logs
    from bridge.app import Bridge, create_app
    from bridge.http_protocol import protocol_with_header_timeout

    class BridgeServer(uvicorn.Server):
        """uvicorn's server, telling the bridge the moment SIGTERM arrives so /readyz turns false at once
        (uvicorn then stops accepting, lets in-flight requests finish, and runs the lifespan shutdown)."""

        def __init__(self, config: uvicorn.Config, bridge: Bridge) -> None:
            super().__init__(config)
            self.bridge = bridge

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.bridge.shutting_down = True
            super().handle_exit(sig, frame)

    logs.configure(settings.logging.level)
    bridge = Bridge(settings)
    bridge.check_topics()
    server_settings = settings.server
    config = uvicorn.Config(
        create_app(bridge),
        host=server_settings.host,
        port=server_settings.port,
        ssl_certfile=server_settings.tls_cert_file or None,
        ssl_keyfile=server_settings.tls_key_file or None,
        ssl_ciphers=TLS12_CIPHERS,
        # The receiver answers 503 + Retry-After past limit_concurrency requests; this is the backstop
        # for connections (uvicorn answers a bare 503 past it).
        limit_concurrency=2 * server_settings.limit_concurrency,
        timeout_keep_alive=int(server_settings.keep_alive_timeout_seconds),
        timeout_graceful_shutdown=int(server_settings.shutdown_grace_seconds),
        log_config=None,
        access_log=False,
        server_header=False,
        http=protocol_with_header_timeout(server_settings.header_read_timeout_seconds),
        proxy_headers=False,
    )
    config.load()
    if config.ssl is not None:
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    heap.settle_after_startup()
    BridgeServer(config, bridge).run()
    return 0


COMMAND = Command(
    name="serve",
    summary="run the webhook receiver",
    description="Receive IDaaS webhooks, verify them and publish them to Kafka (the container's command).",
    add_arguments=lambda parser: None,
    run=serve,
)
