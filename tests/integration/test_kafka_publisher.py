"""KafkaPublisher against real brokers: the acknowledgement it waits for, and the deadline it keeps."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME
from prometheus_client import REGISTRY

from bridge.config import KafkaSettings
from bridge.publish.kafka import KafkaPublisher, PublishError, TopicLimits, topic_limit_bytes, topic_limits
from tests.e2e.harness import consume_all
from tests.kafka_broker import create_topics

pytestmark = pytest.mark.kafka


def _timeouts(topic: str) -> float:
    labels = {"topic": topic, "result": "timeout"}
    return REGISTRY.get_sample_value("idaas_bridge_kafka_messages_total", labels) or 0.0


async def _publish(
    publisher: KafkaPublisher, topic: str, deadline: float, timestamp_ms: int | None = None
) -> object:
    publisher.start()
    try:
        return await publisher.publish(
            topic,
            b"key",
            b"value",
            [("h", b"1"), ("h2", b"")],
            timestamp_ms or int(time.time() * 1000),
            deadline,
        )
    finally:
        publisher.close(0.5)


def test_publish_returns_once_the_broker_acknowledges(kafka_bootstrap: str, topic_prefix: str) -> None:
    """...with the record written as given: produce() passes its arguments by position, in an order the
    client library does not document."""
    topic = f"{topic_prefix}acknowledged"
    create_topics(kafka_bootstrap, [topic])
    publisher = KafkaPublisher(
        dataclasses.replace(KafkaSettings(), bootstrap_servers=kafka_bootstrap), 5, "t"
    )
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    delivered = asyncio.run(_publish(publisher, topic, deadline=10, timestamp_ms=an_hour_ago))
    assert delivered.topic == topic and delivered.offset >= 0  # type: ignore[attr-defined]
    assert _timeouts(topic) == 0
    [record] = consume_all(kafka_bootstrap, [topic], expected=1)
    assert (record.key(), record.value(), record.headers()) == (b"key", b"value", [("h", b"1"), ("h2", b"")])
    assert record.timestamp() == (TIMESTAMP_CREATE_TIME, an_hour_ago)
    assert (record.partition(), record.offset()) == (delivered.partition, delivered.offset)  # type: ignore[attr-defined]


def test_publish_fails_with_ack_timeout_at_its_deadline_when_no_broker_answers() -> None:
    topic = "nobody.listens"
    settings = dataclasses.replace(KafkaSettings(), bootstrap_servers="127.0.0.1:1")
    publisher = KafkaPublisher(settings, message_timeout=30, name="t")
    before = _timeouts(topic)
    started = time.monotonic()
    with pytest.raises(PublishError) as raised:
        asyncio.run(_publish(publisher, topic, deadline=0.3))
    assert raised.value.reason == "ack_timeout"
    assert 0.3 <= time.monotonic() - started < 5
    assert _timeouts(topic) == before + 1


def test_every_publish_of_a_burst_gets_its_own_acknowledgement(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Reports reach the event loop in batches (one wake-up for all that arrived by then): in a burst of
    waves, each publish still resolves, with its own offset, and none waits for a later record's report."""
    topic = f"{topic_prefix}burst"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    publisher = KafkaPublisher(
        dataclasses.replace(KafkaSettings(), bootstrap_servers=kafka_bootstrap), 10, "t"
    )

    async def waves() -> list[object]:
        publisher.start()
        delivered: list[object] = []
        try:
            for wave in range(20):
                # Waves of different sizes, so reports keep arriving while earlier ones are being settled;
                # the last wave alone must not need a later record to wake the loop.
                delivered += await asyncio.gather(
                    *(
                        publisher.publish(topic, b"k", b"%d" % i, [], int(time.time() * 1000), 10)
                        for i in range(1 + 37 * wave % 150)
                    )
                )
            # Acknowledged records leave the deadlines' queue with their reports, not at their deadlines.
            assert sum(len(queue._waiting) for queue in publisher._ack_deadlines.values()) == 0
        finally:
            publisher.close(1.0)
        return delivered

    delivered = asyncio.run(waves())
    offsets = [record.offset for record in delivered]  # type: ignore[attr-defined]
    assert sorted(offsets) == list(range(len(delivered)))
    assert _timeouts(topic) == 0


def test_records_produced_in_one_turn_reach_kafka_in_the_order_produced(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """produce() hands records to librdkafka at the end of the loop's turn, all of the turn's together: in
    produce order, each with its own acknowledgement; and close() hands over those still waiting for the
    end of the turn that calls it, so none is left behind."""
    topic = f"{topic_prefix}one-turn"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    publisher = KafkaPublisher(
        dataclasses.replace(KafkaSettings(), bootstrap_servers=kafka_bootstrap), 10, "t"
    )

    async def one_turn_then_close() -> tuple[list[object], list[bytes | None]]:
        publisher.start()
        now_ms = int(time.time() * 1000)
        futures = [publisher.produce(topic, b"k", b"%d" % i, [], now_ms) for i in range(50)]
        delivered = await asyncio.gather(*futures)
        for i in range(3):
            publisher.produce(topic, b"k", b"last %d" % i, [], now_ms)
        assert publisher.close(10) == 0  # in the same turn as the produce() calls above
        # Still in that turn (the loop is blocked here): what Kafka has now, close() handed over.
        return delivered, [record.value() for record in consume_all(kafka_bootstrap, [topic], 53, 10)]

    delivered, values = asyncio.run(one_turn_then_close())
    assert [record.offset for record in delivered] == list(range(50))  # type: ignore[attr-defined]
    assert values == [b"%d" % i for i in range(50)] + [b"last %d" % i for i in range(3)]


def _after_a_refusal(
    kafka_bootstrap: str, topic: str, refuse: Callable[[KafkaPublisher, int], None]
) -> tuple[object, object]:
    """`refuse` produces a record the client library refuses at the hand-over; then one record in the same
    turn and one in a later turn. Returns their acknowledgements."""
    create_topics(kafka_bootstrap, [topic], partitions=1)
    publisher = KafkaPublisher(
        dataclasses.replace(KafkaSettings(), bootstrap_servers=kafka_bootstrap), 10, "t"
    )

    async def refusal_then_good_ones() -> tuple[object, object]:
        publisher.start()
        try:
            now_ms = int(time.time() * 1000)
            refuse(publisher, now_ms)
            same_turn = await asyncio.wait_for(publisher.produce(topic, b"k", b"same turn", [], now_ms), 10)
            later = await asyncio.wait_for(publisher.produce(topic, b"k", b"later", [], now_ms), 10)
            return same_turn, later
        finally:
            publisher.close(1.0)

    return asyncio.run(refusal_then_good_ones())


def test_a_record_the_client_refuses_fails_alone_and_the_turns_after_it_are_handed_over(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """An argument the client library does not take (here a header value of the wrong type) is that record's
    failure, raised to whoever waits for it, as when produce() handed it over at once. It must not stop the
    hand-over: the records queued behind it in its turn, and every later turn's, still reach Kafka."""
    topic = f"{topic_prefix}refused-argument"
    refused: list[asyncio.Future[object]] = []

    def wrong_header_type(publisher: KafkaPublisher, now_ms: int) -> None:
        refused.append(publisher.produce(topic, b"k", b"bad", [("h", 5)], now_ms))  # type: ignore[list-item,arg-type]

    first, later = _after_a_refusal(kafka_bootstrap, topic, wrong_header_type)
    assert [first.offset, later.offset] == [0, 1]  # type: ignore[attr-defined]
    assert isinstance(refused[0].exception(), TypeError)


def test_a_record_whose_caller_gave_up_before_the_hand_over_does_not_stop_it(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A publish future can be cancelled before the end of its turn (a request task cancelled when the
    shutdown's grace runs out cancels the future it awaits). If librdkafka then refuses the record at once
    (here one larger than message.max.bytes), there is nobody to tell, and the records behind it in the turn,
    and every later turn's, are still handed over."""
    topic = f"{topic_prefix}gave-up"

    def cancelled_oversized(publisher: KafkaPublisher, now_ms: int) -> None:
        too_large = b"x" * (topic_limit_bytes(KafkaSettings()) + 1)
        publisher.produce(topic, b"k", too_large, [], now_ms).cancel()

    first, later = _after_a_refusal(kafka_bootstrap, topic, cancelled_oversized)
    assert [first.offset, later.offset] == [0, 1]  # type: ignore[attr-defined]


def test_topic_limits_reads_each_topics_configuration(kafka_bootstrap: str, topic_prefix: str) -> None:
    """The admin client must outlive the futures it answers with (destroying it fails them: "Broker handle
    destroyed for termination"), which compiled code, freeing a local after its last use, did not do."""
    topic = f"{topic_prefix}limits"
    create_topics(kafka_bootstrap, [topic])
    settings = dataclasses.replace(KafkaSettings(), bootstrap_servers=kafka_bootstrap)
    limits = topic_limits(settings, names=[topic])
    assert limits == {topic: TopicLimits(topic_limit_bytes(KafkaSettings()), 7 * 24 * 3_600_000)}
