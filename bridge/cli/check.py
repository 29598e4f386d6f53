"""`idaas-bridge check-config [--connect]`: validate the configuration; with --connect, check what it points
at: the brokers (reachable, authenticated), each topic against what the bridge needs, the spool directory,
and the TLS files. The topic rules are the daemon's own start-up checks (bridge/publish/kafka.py)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bridge.cli.command import Command
from bridge.cli.exits import EXIT_FAILED, EXIT_OK
from bridge.cli.kafka_client import CONNECT_TIMEOUT_SECONDS, ERRORS, cli_admin
from bridge.config import Settings, describe
from bridge.publish.kafka import (
    replication_problem,
    retention_problem,
    size_problem,
    topic_limits,
)
from bridge.publish.rejected import RejectedRecords

Status = Literal["ok", "warn", "fail"]
#: A certificate closer than this to its expiry is a warning.
EXPIRY_WARNING_DAYS: Final = 30
#: Kafka client properties that name a file the client reads; the certificate ones also get an expiry check.
KAFKA_FILE_PROPERTIES: Final = ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location")
KAFKA_CERTIFICATE_PROPERTIES: Final = ("ssl.ca.location", "ssl.certificate.location")
STYLES: Final = {"ok": "green", "warn": "yellow", "fail": "red"}


@dataclass(frozen=True)
class Verdict:
    check: str
    status: Status
    detail: str


def check_kafka(settings: Settings) -> tuple[list[Verdict], AdminClient | None, int]:
    """Brokers reachable and authenticated; returns the admin client and the broker count when they are."""
    kafka = settings.kafka
    admin = cli_admin(kafka)
    try:
        metadata = admin.list_topics(timeout=CONNECT_TIMEOUT_SECONDS)
    except KafkaException as exc:
        return [Verdict("kafka", "fail", str(ERRORS.explain(exc, kafka.bootstrap_servers)))], None, 0
    brokers = len(metadata.brokers)
    protocol = kafka.client_properties.get("security.protocol", "PLAINTEXT")
    detail = f"{brokers} broker(s) answered at {kafka.bootstrap_servers} ({protocol})"
    return [Verdict("kafka", "ok", detail)], admin, brokers


def check_topics(settings: Settings, admin: AdminClient, brokers: int) -> list[Verdict]:
    """Each configured topic: present, its partitions and replicas, and the daemon's rules on its limits."""
    kafka = settings.kafka
    metadata = admin.list_topics(timeout=CONNECT_TIMEOUT_SECONDS).topics
    rejected_file = str(RejectedRecords(Path(settings.spool.path)).path)
    verdicts = []
    present = []
    for key, topic in kafka.topics.items():
        name = topic.name
        found = metadata.get(name)
        if found is None or found.error is not None:
            fix = f"create it (idaas-bridge topics) or fix kafka.topics.{key}.name"
            verdicts.append(Verdict(f"topic {name}", "fail", f"does not exist ({key} events); {fix}"))
            continue
        present.append(name)
    limits = topic_limits(kafka, timeout=CONNECT_TIMEOUT_SECONDS, names=present) if present else {}
    for name in present:
        partitions = metadata[name].partitions
        replicas = min((len(partition.replicas) for partition in partitions.values()), default=0)
        limit = limits[name]
        shown = (
            f"{len(partitions)} partition(s), replication {replicas}, "
            f"retention.ms {limit.retention_ms}, max.message.bytes {limit.max_message_bytes}"
        )
        problems = [
            problem
            for problem in (
                replication_problem(name, replicas, brokers),
                retention_problem(name, limit),
                size_problem(name, limit, kafka, rejected_file),
            )
            if problem is not None
        ]
        if any(partition.leader < 0 for partition in partitions.values()):
            verdicts.append(Verdict(f"topic {name}", "fail", f"{shown}; a partition has no leader"))
        else:
            verdicts.append(
                Verdict(f"topic {name}", "warn" if problems else "ok", "; ".join([shown, *problems]))
            )
    return verdicts


def check_spool(settings: Settings) -> Verdict:
    """The spool directory exists (or can be created), takes an fsync'd file, and has room for max_bytes."""
    spool = settings.spool
    directory = Path(spool.path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".check-") as probe:
            probe.write(b"x")
            probe.flush()
            os.fsync(probe.fileno())
        free = shutil.disk_usage(directory).free
    except OSError as exc:
        return Verdict("spool", "fail", f"{directory} is not writable: {exc.strerror or exc}; fix spool.path")
    detail = (
        f"{directory} writable, {free // 2**20} MiB free (spool.max_bytes {spool.max_bytes // 2**20} MiB)"
    )
    if free < spool.max_bytes:
        return Verdict("spool", "warn", f"{detail}: the spool would run out of disk before its limit")
    return Verdict("spool", "ok", detail)


def certificate_expiry(path: str) -> float:
    """The notAfter of the first certificate in a PEM file, as epoch seconds."""
    # The standard library's only PEM certificate parser (no third-party crypto dependency for this).
    decoded = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
    return ssl.cert_time_to_seconds(decoded["notAfter"])


def check_file(setting: str, path: str, certificate: bool) -> Verdict:
    name = f"tls {setting}"
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return Verdict(name, "fail", f"{path} is not readable: {exc.strerror or exc}")
    if not certificate:
        return Verdict(name, "ok", f"{path} readable")
    try:
        expires = certificate_expiry(path)
    except (ssl.SSLError, ValueError, KeyError) as exc:
        return Verdict(name, "fail", f"{path} is not a PEM certificate ({exc})")
    days = (expires - time.time()) / 86400
    when = time.strftime("%Y-%m-%d", time.gmtime(expires))
    if days < 0:
        return Verdict(name, "fail", f"{path} expired on {when}; renew it")
    if days < EXPIRY_WARNING_DAYS:
        return Verdict(name, "warn", f"{path} expires on {when}, in {days:.0f} days; renew it")
    return Verdict(name, "ok", f"{path} valid until {when}")


def check_tls(settings: Settings) -> list[Verdict]:
    """The server's certificate and key (readable, matching, not expired) and the Kafka client's files."""
    server = settings.server
    verdicts = []
    if server.tls:
        verdicts.append(check_file("server.tls_cert_file", server.tls_cert_file, certificate=True))
        verdicts.append(check_file("server.tls_key_file", server.tls_key_file, certificate=False))
        if all(verdict.status != "fail" for verdict in verdicts):
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                    server.tls_cert_file, server.tls_key_file
                )
            except ssl.SSLError as exc:
                verdicts.append(
                    Verdict("tls server key", "fail", f"key does not fit the certificate ({exc})")
                )
    properties = settings.kafka.client_properties
    for setting in KAFKA_FILE_PROPERTIES:
        if setting in properties:
            certificate = setting in KAFKA_CERTIFICATE_PROPERTIES
            verdicts.append(check_file(f"kafka {setting}", properties[setting], certificate))
    return verdicts


def run_checks(settings: Settings) -> list[Verdict]:
    verdicts, admin, brokers = check_kafka(settings)
    if admin is not None:
        verdicts += check_topics(settings, admin, brokers)
    return [*verdicts, check_spool(settings), *check_tls(settings)]


def verdict_table(verdicts: list[Verdict], title: str) -> Table:
    table = Table(title=title)
    table.add_column("check", style="bold")
    table.add_column("verdict")
    table.add_column("detail", overflow="fold")
    for verdict in verdicts:
        style = STYLES[verdict.status]
        table.add_row(escape(verdict.check), f"[{style}]{verdict.status}[/{style}]", escape(verdict.detail))
    return table


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not args.connect:
        print(json.dumps(describe(settings), indent=2))
        return EXIT_OK
    verdicts = run_checks(settings)
    if args.json:
        for verdict in verdicts:
            print(json.dumps({"check": verdict.check, "status": verdict.status, "detail": verdict.detail}))
    else:
        Console(width=max(120, shutil.get_terminal_size().columns)).print(
            verdict_table(verdicts, "idaas-bridge check-config --connect")
        )
    return EXIT_FAILED if any(verdict.status == "fail" for verdict in verdicts) else EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect",
        action="store_true",
        help="also check the brokers, the topics, the spool directory and the TLS files (exit 1 on failure)",
    )
    parser.add_argument("--json", action="store_true", help="with --connect: one JSON verdict per line")


COMMAND = Command(
    description=(
        "Validate the configuration and print the effective settings with secrets masked. With --connect, "
        "print a verdict per check instead: brokers reachable and authenticated; each configured topic "
        "present, with its partitions, replication, retention.ms and max.message.bytes judged against what "
        "the bridge needs; the spool directory writable with room; TLS files readable and their "
        "certificates' expiry. Exit 1 when a check fails (a warning does not fail)."
    ),
    add_arguments=add_arguments,
    run=run,
)
