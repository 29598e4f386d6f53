"""`idaas-bridge`: serve | check-config | topics | simulate | rejected."""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from bridge import auth
from bridge.config import ConfigError, Settings, describe, load_settings
from bridge.events.samples import sample_deliveries
from bridge.publish import topics
from bridge.publish.kafka import admin_client, producer_config
from bridge.publish.rejected import RejectedRecord, RejectedRecords
from bridge.routing import OutboundRecord

#: Modern AEAD suites only for TLS 1.2 (TLS 1.3 suites are fixed by OpenSSL).
TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"
EXIT_CONFIG: Final = 2
#: How long a replay waits for Kafka to take one rejected record.
REPLAY_TIMEOUT_SECONDS: Final = 30.0
#: Connections the operations listener holds at once: a few probes and scrapers, never a crowd.
OPS_CONNECTION_LIMIT: Final = 64


def serve(settings: Settings) -> int:
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
        "timeout_keep_alive": int(server.keep_alive_timeout_seconds),
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
        timeout_graceful_shutdown=int(server.shutdown_grace_seconds),
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
    from confluent_kafka import KafkaError, KafkaException, Producer

    store = RejectedRecords(Path(settings.spool.path))
    if not replay:
        kept = store.read()
        for entry in kept:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.rejected_at))
            print(f"{when} {entry.record.topic} {len(entry.record.value)} bytes: {entry.detail}")
        print(f"{len(kept)} rejected record(s) in {store.path}")
        return 0
    producer = Producer(producer_config(settings.kafka, REPLAY_TIMEOUT_SECONDS))

    def refusal(record: OutboundRecord) -> str | None:
        """None once Kafka acknowledged the record, else why it did not."""
        outcome: list[KafkaError | None] = []
        try:
            producer.produce(
                record.topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                timestamp=record.timestamp_ms,
                on_delivery=lambda error, _message: outcome.append(error),
            )
            producer.flush(REPLAY_TIMEOUT_SECONDS + 5)
        except KafkaException as exc:
            return str(exc)
        if not outcome:
            return "no answer from Kafka"
        return None if outcome[0] is None else str(outcome[0])

    def publish(records: list[RejectedRecord]) -> list[RejectedRecord]:
        refused = []
        for entry in records:
            why = refusal(entry.record)
            if why is not None:
                refused.append(entry)
                print(f"still refused: {entry.record.topic}: {why}")
        return refused

    published, refused = store.replay(publish)
    print(f"published {published} rejected record(s); {refused} still in {store.path}")
    return 1 if refused else 0


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
