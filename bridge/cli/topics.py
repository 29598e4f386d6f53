"""`idaas-bridge topics [create|describe]`: the configured Kafka topics."""

from __future__ import annotations

import argparse
import shutil
from typing import Final

from rich.console import Console

from bridge.cli.check import check_kafka, check_topics, verdict_table
from bridge.cli.command import Command, positive
from bridge.cli.exits import EXIT_FAILED, EXIT_OK, CommandError
from bridge.cli.kafka_client import CONNECT_TIMEOUT_SECONDS, cli_admin
from bridge.config import Settings
from bridge.publish import topics
from bridge.publish.kafka import MAX_RECORD_AGE_MS

#: Kafka's own default (7 days): well above twice MAX_RECORD_AGE_MS, what the bridge needs.
DEFAULT_RETENTION_MS: Final = 7 * 24 * 3600 * 1000


def create_topics(settings: Settings, partitions: int, replication: int, retention_ms: int) -> int:
    """Create the configured topics that do not exist; return once every one can be produced to."""
    config = {**topics.new_topic_config(settings.kafka), "retention.ms": str(retention_ms)}
    wanted = settings.topic_names()
    try:
        created = topics.create_topics(
            cli_admin(settings.kafka),
            wanted,
            partitions,
            replication,
            config,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except TimeoutError as exc:
        raise CommandError(
            f"topics on {settings.kafka.bootstrap_servers}: {exc}", "check the brokers' health and logs"
        ) from None
    for name in created:
        print(
            f"created topic {name} ({partitions} partitions, replication factor {replication}, "
            f"max.message.bytes {config['max.message.bytes']}, retention.ms {retention_ms})"
        )
    print("all topics exist" if not created else f"{len(created)} topic(s) created, all with a leader")
    return EXIT_OK


def describe_topics(settings: Settings) -> int:
    """The configured topics' state, judged as check-config --connect judges them."""
    verdicts, admin, brokers = check_kafka(settings)
    if admin is None:
        raise CommandError(verdicts[0].detail, "see check-config --connect")
    found = check_topics(settings, admin, brokers)
    Console(width=max(120, shutil.get_terminal_size().columns)).print(
        verdict_table(found, f"topics on {settings.kafka.bootstrap_servers}")
    )
    return EXIT_FAILED if any(verdict.status == "fail" for verdict in found) else EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=["create", "describe"],
        default="create",
        help="create (default): the configured topics that do not exist yet; describe: their state",
    )
    parser.add_argument(
        "--partitions", type=positive(int), default=3, help="partitions of each new topic (default 3)"
    )
    parser.add_argument(
        "--replication-factor",
        type=positive(int),
        default=1,
        help="replicas of each new topic (default 1; 3 in production)",
    )
    parser.add_argument(
        "--retention-ms",
        type=positive(int),
        default=DEFAULT_RETENTION_MS,
        help=f"retention.ms of each new topic (default {DEFAULT_RETENTION_MS}, 7 days; at least "
        f"{2 * MAX_RECORD_AGE_MS} is what the bridge needs)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "describe":
        return describe_topics(settings)
    return create_topics(settings, args.partitions, args.replication_factor, args.retention_ms)


COMMAND = Command(
    description=(
        "create (the default): create the configured topics that do not exist yet, with room for the "
        "largest record the bridge produces, and wait until each has partition leaders; existing topics are "
        "left alone. describe: a table of each configured topic's partitions, replication, retention.ms and "
        "max.message.bytes with the verdict of check-config --connect (exit 1 when one is missing)."
    ),
    add_arguments=add_arguments,
    run=run,
)
