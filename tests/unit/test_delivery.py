"""DurableDelivery's choice between Kafka and the spool (a scripted publisher, a real spool on disk)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.publish import delivery as delivery_module
from bridge.publish.delivery import DurableDelivery
from bridge.publish.kafka import Delivered, PublishError
from bridge.publish.spool import Spool
from bridge.routing import OutboundRecord

RECORD = OutboundRecord(topic="idaas.user", key=b"k", value=b"{}", headers=[], timestamp_ms=0)


class ScriptedPublisher:
    """Answers each publish() with the next scripted outcome: None for an ack, else that error."""

    def __init__(self, outcomes: list[PublishError | None]) -> None:
        self.outcomes = outcomes
        self.calls = 0

    async def publish(self, *args: object) -> Delivered:
        outcome = self.outcomes[self.calls]
        self.calls += 1
        if outcome is not None:
            raise outcome
        return Delivered("idaas.user", 0, self.calls)


def submit_all(tmp_path: Path, outcomes: list[PublishError | None], count: int) -> tuple[list[str], int]:
    async def run() -> tuple[list[str], int]:
        spool = Spool(tmp_path, 1024 * 1024, 64 * 1024)
        await spool.open()
        publisher = ScriptedPublisher(outcomes)
        delivery = DurableDelivery(publisher, spool, 1.0, "kafka_first")  # type: ignore[arg-type]
        answers: list[str] = [await delivery.submit(RECORD) for _ in range(count)]
        await spool.close(5)
        return answers, publisher.calls

    return asyncio.run(run())


def test_after_a_missed_ack_the_next_requests_go_straight_to_the_spool(tmp_path: Path) -> None:
    answers, calls = submit_all(tmp_path, [PublishError("ack_timeout", "no ack"), None], count=3)
    assert answers == ["spooled", "spooled", "spooled"] and calls == 1


def test_a_record_refused_for_its_own_sake_does_not_send_the_next_ones_to_the_spool(tmp_path: Path) -> None:
    too_large = PublishError("msg_size_too_large", "Broker: Message size too large", record_rejected=True)
    answers, calls = submit_all(tmp_path, [too_large, None, None], count=3)
    assert answers == ["spooled", "published", "published"] and calls == 3


def test_kafka_is_tried_again_once_the_backoff_is_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery_module, "KAFKA_BACKOFF_SECONDS", 0.2)

    async def run() -> tuple[list[str], int]:
        spool = Spool(tmp_path, 1024 * 1024, 64 * 1024)
        await spool.open()
        publisher = ScriptedPublisher([PublishError("ack_timeout", "no ack"), None, None])
        delivery = DurableDelivery(publisher, spool, 1.0, "kafka_first")  # type: ignore[arg-type]
        answers = [await delivery.submit(RECORD), await delivery.submit(RECORD)]
        await asyncio.sleep(0.3)
        answers += [await delivery.submit(RECORD), await delivery.submit(RECORD)]
        await spool.close(5)
        return answers, publisher.calls

    answers, calls = asyncio.run(run())
    assert answers == ["spooled", "spooled", "published", "published"] and calls == 3
