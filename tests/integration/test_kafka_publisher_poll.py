"""Serving the producer's events outlives a failing callback (real broker): otherwise no delivery report
would ever arrive again and every request would wait out its ack deadline."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from typing import Any

import pytest
from confluent_kafka import Producer

from bridge.config import KafkaSettings
from bridge.publish.kafka import KafkaPublisher
from tests.kafka_broker import create_topics

pytestmark = pytest.mark.kafka


def test_serving_the_reports_survives_a_callback_error(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"{topic_prefix}poll"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    raised = threading.Event()

    def failing_once(config: dict[str, Any]) -> Producer:
        """The producer, with its first statistics callback failing (served by `poll()` on the loop)."""
        on_statistics = config["stats_cb"]

        def fails_once(raw: str) -> None:
            if not raised.is_set():
                raised.set()
                raise RuntimeError("a statistics callback failed")
            on_statistics(raw)

        return Producer({**config, "stats_cb": fails_once})

    settings = replace(KafkaSettings(), bootstrap_servers=kafka_bootstrap, statistics_interval_seconds=0.1)

    async def scenario() -> None:
        publisher = KafkaPublisher(settings, 10.0, "test", export_statistics=True, make_producer=failing_once)
        publisher.start()
        try:
            assert await asyncio.to_thread(raised.wait, 10)
            delivered = await publisher.publish(topic, b"k", b"v", [], 0, deadline=10)
            assert delivered.topic == topic and delivered.offset >= 0
        finally:
            await asyncio.to_thread(publisher.close, 5)

    with caplog.at_level(logging.ERROR, logger="bridge.publish.kafka"):
        asyncio.run(scenario())
    assert any(r.getMessage() == "a kafka callback failed; polling goes on" for r in caplog.records)
