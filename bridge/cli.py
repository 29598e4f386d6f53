"""`idaas-bridge`: serve | check-config | topics | simulate."""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Final
from urllib.parse import urlsplit

import orjson

from bridge import auth
from bridge.config import ConfigError, Settings, describe, load_settings
from bridge.events.samples import sample_deliveries

#: Modern AEAD suites only for TLS 1.2 (TLS 1.3 suites are fixed by OpenSSL).
TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"
EXIT_CONFIG: Final = 2


def serve(settings: Settings) -> int:
    import uvicorn

    class BridgeServer(uvicorn.Server):
        """uvicorn's server, telling the bridge the moment SIGTERM arrives so /readyz turns false at once
        (uvicorn then stops accepting, lets in-flight requests finish, and runs the lifespan shutdown)."""

        def __init__(self, config: uvicorn.Config, bridge: Bridge) -> None:
            super().__init__(config)
            self.bridge = bridge

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.bridge.shutting_down = True
            super().handle_exit(sig, frame)

    from bridge import logs
    from bridge.app import Bridge, create_app
    from bridge.http_protocol import protocol_with_header_timeout

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
    BridgeServer(config, bridge).run()
    return 0


def create_topics(settings: Settings, partitions: int, replication: int) -> int:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, **settings.kafka.client_properties}
    )
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [topic.name for topic in settings.kafka.topics.values() if topic.name not in existing]
    if not wanted:
        print("all topics exist")
        return 0
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replication) for name in wanted]
    )
    for name, future in futures.items():
        future.result(timeout=30)
        print(f"created topic {name} ({partitions} partitions, replication factor {replication})")
    return 0


def simulate(settings: Settings, url: str, webhook: str, cafile: str | None, types: Sequence[str]) -> int:
    """Sign and POST one sample delivery per type, exactly as IDaaS would, and print each answer."""
    hook = settings.webhook(webhook)
    if hook is None:
        raise ConfigError(
            f"--webhook {webhook!r} is not configured (configured: {[h.name for h in settings.webhooks]})"
        )
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None
    failures = 0
    for sample in sample_deliveries():
        if types and sample["type"] not in types:
            continue
        body = orjson.dumps({**sample, "id": f"sim-{time.time_ns()}"})
        headers = auth.sign(hook.tokens[0], "POST", hook.public_url or url, body, int(time.time()))
        connection: http.client.HTTPConnection = (
            http.client.HTTPSConnection(parts.netloc, context=context, timeout=5)
            if context is not None
            else http.client.HTTPConnection(parts.netloc, timeout=5)
        )
        connection.request("POST", parts.path or "/", body=body, headers=headers)
        answer = connection.getresponse()
        text = answer.read().decode()
        connection.close()
        failures += answer.status >= 300
        print(f"{sample['type']:<28} {answer.status} {text}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="idaas-bridge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the webhook receiver"),
        ("check-config", "validate the configuration and print it with secrets masked"),
        ("topics", "create the configured Kafka topics that do not exist yet"),
        ("simulate", "send one signed sample delivery of each event type to a running bridge"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--config", help="YAML config file (default: $IDAAS_BRIDGE_CONFIG)")
        if name == "topics":
            command.add_argument("--partitions", type=int, default=3)
            command.add_argument("--replication-factor", type=int, default=1)
        if name == "simulate":
            command.add_argument("--url", required=True, help="e.g. https://127.0.0.1:8443/webhooks/dev")
            command.add_argument("--webhook", required=True, help="configured webhook name whose token signs")
            command.add_argument("--cafile", help="CA bundle to verify the bridge's certificate")
            command.add_argument(
                "--type", action="append", default=[], help="only this event type (repeatable)"
            )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.command == "check-config":
            print(json.dumps(describe(settings), indent=2))
            return 0
        if args.command == "topics":
            return create_topics(settings, args.partitions, args.replication_factor)
        if args.command == "simulate":
            return simulate(settings, args.url, args.webhook, args.cafile, args.type)
        return serve(settings)
    except ConfigError as exc:
        print(f"idaas-bridge: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
