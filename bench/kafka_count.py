"""Records a contender has written: the sum of its topics' high watermarks (its topics are its own)."""

from __future__ import annotations

import time
import uuid
from typing import Final

from confluent_kafka import Consumer, KafkaException, TopicPartition

#: spool_first answers before Kafka has the record; its drainer needs a moment after the load ends.
SETTLE_TIMEOUT_SECONDS: Final = 30.0
RETRIES: Final = 20


class RecordCounter:
    def __init__(self, bootstrap: str) -> None:
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})

    def count(self, topics: list[str]) -> int:
        """Retried for a while: a broker busy with new topics may briefly not know a partition's leader."""
        for _ in range(RETRIES - 1):
            try:
                return self._count(topics)
            except KafkaException:
                time.sleep(0.5)
        return self._count(topics)

    def _count(self, topics: list[str]) -> int:
        total = 0
        for topic in topics:
            partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
            for partition in partitions:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                total += high
        return total

    def settle(self, topics: list[str], at_least: int) -> int:
        """The count once it reaches `at_least` and stops moving (or after SETTLE_TIMEOUT_SECONDS)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
        previous = -1
        while True:
            time.sleep(0.5)
            current = self.count(topics)
            if (current >= at_least and current == previous) or time.monotonic() > deadline:
                return current
            previous = current

    def close(self) -> None:
        self._consumer.close()
