"""`idaas-bridge`: serve | check-config | topics | simulate | rejected."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Final, cast
from urllib.parse import urlsplit

import orjson

from bridge import auth
from bridge.config import ConfigError, Settings, describe, load_settings
from bridge.events.samples import sample_deliveries
from bridge.publish import topics
from bridge.publish.delivery import REPORT_MARGIN_SECONDS
from bridge.publish.kafka import KafkaPublisher, PublishError, admin_client
from bridge.publish.rejected import RejectedRecord, RejectedRecords

#: Modern AEAD suites only for TLS 1.2 (TLS 1.3 suites are fixed by OpenSSL).
TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"
EXIT_CONFIG: Final = 2
#: How long a replay waits for Kafka to take one rejected record.
REPLAY_TIMEOUT_SECONDS: Final = 30.0


def uvicorn_seconds(seconds: float) -> int:
    """A timeout for uvicorn.Config. uvicorn annotates them as int but only uses them as asyncio delays,
    so fractions work; int() would cut them (0.5 s of keep-alive became 0: none at all)."""
    return cast(int, seconds)


def serve(settings: Settings) -> int:
    import uvicorn

    class BridgeServer(uvicorn.Server):
        """uvicorn's server, telling the bridge the moment SIGTERM arrives so /readyz turns false at once
        (uvicorn then stops accepting, lets in-flight requests finish, and runs the lifespan shutdown)."""

        def __init__(self, config: uvicorn.Config, bridge: Bridge) -> None:
            super().__init__(config)
            self.bridge = bridge

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.bridge.begin_shutdown()
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
        timeout_keep_alive=uvicorn_seconds(server_settings.keep_alive_timeout_seconds),
        # The in-flight phase of the shutdown budget: it starts at SIGTERM, with the whole budget left.
        timeout_graceful_shutdown=uvicorn_seconds(server_settings.shutdown_grace_seconds),
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
    """Create the configured topics that do not exist; return once every one can be produced to."""
    from confluent_kafka import KafkaException

    config = topics.new_topic_config(settings.kafka)
    wanted = [topic.name for topic in settings.kafka.topics.values()]
    try:
        created = topics.create_topics(admin_client(settings.kafka), wanted, partitions, replication, config)
    except (KafkaException, TimeoutError) as exc:
        print(f"idaas-bridge: topics on {settings.kafka.bootstrap_servers}: {exc}", file=sys.stderr)
        return 1
    for name in created:
        print(
            f"created topic {name} ({partitions} partitions, replication factor {replication}, "
            f"max.message.bytes {config['max.message.bytes']})"
        )
    print("all topics exist" if not created else f"{len(created)} topic(s) created, all with a leader")
    return 0


def rejected(settings: Settings, replay: bool) -> int:
    """List the records Kafka refused for good, or publish them again (one at a time: the broker refuses
    a whole batch for one record it will not take) and keep only those it still refuses."""
    store = RejectedRecords(Path(settings.spool.path))
    if not replay:
        kept = store.read()
        for entry in kept:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.rejected_at))
            print(f"{when} {entry.record.topic} {len(entry.record.value)} bytes: {entry.detail}")
        print(f"{len(kept)} rejected record(s) in {store.path}")
        return 0

    def publish(records: list[RejectedRecord]) -> list[RejectedRecord]:
        return asyncio.run(republish(settings, records))

    published, refused = store.replay(publish)
    print(f"published {published} rejected record(s); {refused} still in {store.path}")
    return 1 if refused else 0


async def republish(settings: Settings, records: list[RejectedRecord]) -> list[RejectedRecord]:
    """Publish `records` one by one through the bridge's own producer path (KafkaPublisher: durability
    settings, and the timestamp floor that keeps a record rejected days ago from being deleted by
    retention at once); return those Kafka still refuses."""
    publisher = KafkaPublisher(settings.kafka, REPLAY_TIMEOUT_SECONDS, "replay")
    publisher.start()
    refused = []
    try:
        for entry in records:
            record = entry.record
            try:
                await publisher.publish(
                    record.topic,
                    record.key,
                    record.value,
                    record.headers,
                    record.timestamp_ms,
                    REPLAY_TIMEOUT_SECONDS + REPORT_MARGIN_SECONDS,
                )
            except PublishError as exc:
                refused.append(entry)
                print(f"still refused: {record.topic}: {exc}")
    finally:
        await asyncio.to_thread(publisher.close, REPLAY_TIMEOUT_SECONDS)
    return refused


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
        ("rejected", "list the records Kafka refused for good, kept in the spool directory, or replay them"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--config", help="YAML config file (default: $IDAAS_BRIDGE_CONFIG)")
        if name == "topics":
            command.add_argument("--partitions", type=int, default=3)
            command.add_argument("--replication-factor", type=int, default=1)
        if name == "rejected":
            command.add_argument(
                "--replay", action="store_true", help="publish them again; keep only those still refused"
            )
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
        if args.command == "rejected":
            return rejected(settings, args.replay)
        return serve(settings)
    except ConfigError as exc:
        print(f"idaas-bridge: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
