"""`idaas-bridge rejected --replay` publishes through the bridge's one producer path (real broker)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from confluent_kafka import TIMESTAMP_CREATE_TIME

from bridge.cli import main
from bridge.config import env_name
from bridge.publish.kafka import MAX_RECORD_AGE_MS, PublishError
from bridge.publish.rejected import RejectedRecords
from bridge.routing import OutboundRecord
from tests.e2e.harness import consume_all, topic_names
from tests.kafka_broker import create_topics

pytestmark = pytest.mark.kafka

WEEK_MS = 7 * 24 * 3600 * 1000


def test_a_replayed_week_old_record_gets_the_floored_timestamp(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = topic_names(topic_prefix)
    create_topics(kafka_bootstrap, topics.values())
    spool = tmp_path / "spool"
    config = tmp_path / "bridge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "webhooks": [{"name": "prod"}],
                "kafka": {
                    "bootstrap_servers": kafka_bootstrap,
                    "topics": {key: {"name": name} for key, name in topics.items()},
                },
                "spool": {"path": str(spool)},
            }
        )
    )
    monkeypatch.setenv(env_name("prod"), "prod-token-0123456789")
    week_ago = int(time.time() * 1000) - WEEK_MS
    record = OutboundRecord(
        topics["user"], b"user-1", b'{"id":"old"}', [("idaas-delivery-id", b"old")], week_ago
    )
    RejectedRecords(spool).keep(record, PublishError("msg_size_too_large", "refused", record_rejected=True))

    before_ms = int(time.time() * 1000)
    assert main(["rejected", "--replay", "--config", str(config)]) == 0

    [message] = consume_all(kafka_bootstrap, [topics["user"]], expected=1)
    kind, timestamp = message.timestamp()
    assert kind == TIMESTAMP_CREATE_TIME
    # Not a week old, which retention would delete at once: at most MAX_RECORD_AGE_MS before the replay.
    assert before_ms - MAX_RECORD_AGE_MS <= timestamp <= int(time.time() * 1000) - MAX_RECORD_AGE_MS + 1000
    assert message.value() == b'{"id":"old"}' and message.key() == b"user-1"
    assert RejectedRecords(spool).read() == []
