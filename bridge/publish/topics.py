"""Creating the bridge's topics, and returning only once they can be produced to.

A broker acknowledges CreateTopics before its metadata shows the new partitions' leaders; a producer (or
the bridge's start-up check) that asks in between is told the topic does not exist. So creation waits
until every partition of every wanted topic has a leader. `idaas-bridge topics` and the tests' broker
helper both create topics here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Final

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bridge.config import KafkaSettings
from bridge.publish.kafka import topic_limit_bytes

CREATE_TIMEOUT_SECONDS: Final = 30.0
METADATA_POLL_SECONDS: Final = 0.1


def new_topic_config(settings: KafkaSettings) -> dict[str, str]:
    """Topic properties for the topics the bridge creates: room for the largest record it may produce
    (the broker's default max.message.bytes is 1 MiB)."""
    return {"max.message.bytes": str(topic_limit_bytes(settings))}


def create_topics(
    admin: AdminClient,
    names: Iterable[str],
    partitions: int,
    replication: int,
    config: dict[str, str],
    timeout: float = CREATE_TIMEOUT_SECONDS,
    connect_timeout: float | None = None,
) -> list[str]:
    """Create those of `names` that do not exist yet; return their names once every partition of every
    one of `names` has a leader, within `timeout` in all and `connect_timeout` (default: `timeout`) for
    the first answer. Raises KafkaException (unreachable, creation refused) or TimeoutError."""
    wanted = list(dict.fromkeys(names))
    deadline = time.monotonic() + timeout
    existing = admin.list_topics(timeout=min(timeout, connect_timeout or timeout)).topics
    missing = [name for name in wanted if name not in existing]
    created = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(name, num_partitions=partitions, replication_factor=replication, config=config)
                for name in missing
            ],
            operation_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                # The future's own TimeoutError says nothing; the caller shows this text to an operator.
                raise TimeoutError(
                    f"the brokers did not confirm the creation of topic {name} within {timeout:g} s"
                ) from None
            except KafkaException as exc:
                # Another process created it meanwhile: what counts is that it exists.
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            else:
                created.append(name)
    wait_for_leaders(admin, wanted, max(0.1, deadline - time.monotonic()))
    return created


def wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Return once broker metadata shows every topic of `names` with a leader for each partition."""
    deadline = time.monotonic() + timeout
    while pending := _without_leaders(admin, names, timeout):
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"topic(s) {', '.join(pending)} have no partition leader {timeout:g} s after creation"
            )
        time.sleep(METADATA_POLL_SECONDS)


def _without_leaders(admin: AdminClient, names: list[str], timeout: float) -> list[str]:
    """The topics among `names` that metadata does not show yet, or with a partition that has no leader."""
    topics = admin.list_topics(timeout=timeout).topics
    return [
        name
        for name in names
        if name not in topics
        or topics[name].error is not None
        or not topics[name].partitions
        or any(partition.leader < 0 for partition in topics[name].partitions.values())
    ]
