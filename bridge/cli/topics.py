"""`idaas-bridge topics [create|describe]`: the configured Kafka topics."""

from __future__ import annotations

import argparse

from bridge.cli.command import Command
from bridge.cli.exits import CommandError
from bridge.cli.kafka_client import cli_admin
from bridge.config import Settings
from bridge.publish import topics


def create_topics(settings: Settings, partitions: int, replication: int) -> int:
    """Create the configured topics that do not exist; return once every one can be produced to."""
    config = topics.new_topic_config(settings.kafka)
    wanted = [topic.name for topic in settings.kafka.topics.values()]
    try:
        created = topics.create_topics(cli_admin(settings.kafka), wanted, partitions, replication, config)
    except TimeoutError as exc:
        raise CommandError(
            f"topics on {settings.kafka.bootstrap_servers}: {exc}", "check the brokers' health and logs"
        ) from None
    for name in created:
        print(
            f"created topic {name} ({partitions} partitions, replication factor {replication}, "
            f"max.message.bytes {config['max.message.bytes']})"
        )
    print("all topics exist" if not created else f"{len(created)} topic(s) created, all with a leader")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--partitions", type=int, default=3, help="partitions of each new topic (default 3)")
    parser.add_argument(
        "--replication-factor", type=int, default=1, help="replicas of each new topic (default 1)"
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    return create_topics(settings, args.partitions, args.replication_factor)


COMMAND = Command(
    name="topics",
    summary="create the configured Kafka topics that do not exist yet",
    description="Create the configured topics that do not exist yet (existing ones are left alone).",
    add_arguments=add_arguments,
    run=run,
)
