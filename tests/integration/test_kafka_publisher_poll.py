"""Serving the producer's events outlives a failing callback (real broker): otherwise no delivery report
would ever arrive again and every request would wait out its ack deadline."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace

import pytest

from bridge.config import KafkaSettings
from bridge.publish import kafka
from bridge.publish.kafka import KafkaPublisher
from tests.kafka_broker import create_topics

pytestmark = pytest.mark.kafka


def test_serving_the_reports_survives_a_callback_error(
    kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"{topic_prefix}poll"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    raised = threading.Event()
    healthy = kafka._any_broker_up

    def fails_once(stats: dict[str, object]) -> bool:
        if not raised.is_set():
            raised.set()
            raise RuntimeError("a statistics callback failed")
        return healthy(stats)

    monkeypatch.setattr(kafka, "_any_broker_up", fails_once)
    settings = replace(KafkaSettings(), bootstrap_servers=kafka_bootstrap, statistics_interval_seconds=0.1)

    async def scenario() -> None:
        publisher = KafkaPublisher(settings, 10.0, "test", export_statistics=True)
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
