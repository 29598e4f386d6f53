"""`idaas-bridge topics [create|describe]`: the configured Kafka topics."""

from __future__ import annotations

import argparse

from bridge.cli.command import Command
from bridge.cli.kafka_client import cli_admin
from bridge.config import Settings
from bridge.publish.kafka import topic_limit_bytes


def create_topics(settings: Settings, partitions: int, replication: int) -> int:
    from confluent_kafka.cimpl import NewTopic

    admin = cli_admin(settings.kafka)
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [topic.name for topic in settings.kafka.topics.values() if topic.name not in existing]
    if not wanted:
        print("all topics exist")
        return 0
    # Large enough for the biggest record the bridge produces (broker default: 1 MiB).
    topic_config = {"max.message.bytes": str(topic_limit_bytes(settings.kafka))}
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=partitions, replication_factor=replication, config=topic_config)
            for name in wanted
        ]
    )
    for name, future in futures.items():
        future.result(timeout=30)
        print(
            f"created topic {name} ({partitions} partitions, replication factor {replication}, "
            f"max.message.bytes {topic_config['max.message.bytes']})"
        )
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
