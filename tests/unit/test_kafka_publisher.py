"""KafkaPublisher against an address where no broker listens: a real librdkafka producer, no broker needed."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import replace

import pytest

from bridge.config import KafkaSettings
from bridge.publish.kafka import KafkaPublisher, PublishError

NOWHERE = replace(KafkaSettings(), bootstrap_servers="127.0.0.1:1", statistics_interval_seconds=0.1)


def test_an_ack_timeout_logs_no_future_exception_never_retrieved(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        publisher = KafkaPublisher(NOWHERE, 0.3, "test")
        publisher.start()
        try:
            try:
                await publisher.publish("t", b"k", b"v", [], 0, deadline=0.05)
            except PublishError as exc:
                assert exc.reason == "ack_timeout"
            else:
                raise AssertionError("published with no broker")
            await asyncio.sleep(2.5)  # librdkafka reports the message's own timeout meanwhile (~1 s scans)
        finally:
            await asyncio.to_thread(publisher.close, 0)
        gc.collect()  # the abandoned future is collected: asyncio would log its unretrieved exception

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()] == []


def test_up_turns_false_when_no_broker_answers_without_any_probe() -> None:
    async def scenario() -> bool:
        publisher = KafkaPublisher(NOWHERE, 1.0, "test", export_statistics=True)
        publisher.up = True  # as if the start-up check had found a broker
        publisher.start()
        try:
            for _ in range(50):
                if not publisher.up:
                    break
                await asyncio.sleep(0.1)
            return publisher.up
        finally:
            await asyncio.to_thread(publisher.close, 0)

    assert asyncio.run(scenario()) is False
