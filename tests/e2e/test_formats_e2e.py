"""Each output format through the daemon and the real broker: what a SIEM consumer reads back is valid."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.e2e.harness import BridgeProcess, consume_all
from tests.kafka_broker import create_topics
from tests.schema_validation import (
    ECS_FLAT,
    OCSF_DIR,
    load_ecs,
    load_ocsf,
    schema_path_or_skip,
    validate_ecs,
    validate_hec,
    validate_native,
    validate_ocsf,
)
from tests.signing import idaas_headers

pytestmark = pytest.mark.kafka

SAMPLES = json.loads((Path(__file__).resolve().parents[2] / "bridge/events/samples.json").read_text())
FORMATS = {"authentication": "ecs", "user": "ocsf", "authenticator": "splunk_hec", "unknown": "native"}
SCHEMA_HEADER = {
    "ecs": b"ecs/9.4.0",
    "ocsf": b"ocsf/1.8.0",
    "splunk_hec": b"splunk-hec-event/1",
    "native": b"idaas.event/1",
}


@pytest.fixture
def formatted_bridge(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> Iterator[BridgeProcess]:
    process = BridgeProcess(
        workdir=tmp_path / "bridge", bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, formats=FORMATS
    )
    create_topics(kafka_bootstrap, list(process.topics.values()))
    process.start()
    yield process
    process.stop()


def test_every_type_lands_in_its_topic_in_that_topic_format_and_validates(
    formatted_bridge: BridgeProcess,
) -> None:
    ecs = load_ecs(schema_path_or_skip(ECS_FLAT))
    ocsf = load_ocsf(schema_path_or_skip(OCSF_DIR))
    unknown = {**SAMPLES[0], "id": "unknown-type-1", "type": "device.enrolled"}
    with formatted_bridge.client() as client:
        for delivery in [*SAMPLES, unknown]:
            body = orjson.dumps(delivery)
            headers = idaas_headers("prod-token-1-0123456789", formatted_bridge.url(), body)
            assert client.post("/webhooks/prod", content=body, headers=headers).status_code == 200
    messages = consume_all(formatted_bridge.bootstrap, formatted_bridge.topics.values(), expected=17)
    assert len(messages) == 17
    seen_formats: set[str] = set()
    for message in messages:
        key = next(k for k, name in formatted_bridge.topics.items() if name == message.topic())
        format_name = FORMATS[key]
        seen_formats.add(format_name)
        headers = dict(message.headers() or [])
        assert headers["schema"] == SCHEMA_HEADER[format_name]
        raw = message.value()
        document = json.loads(raw)
        if format_name == "ecs":
            assert validate_ecs(document, ecs) == []
        elif format_name == "ocsf":
            assert validate_ocsf(document, ocsf) == []
        elif format_name == "splunk_hec":
            assert validate_hec(raw) == []
            assert headers["splunk.header.sourcetype"].decode() == document["sourcetype"]
        else:
            assert validate_native(document) == []
    assert seen_formats == set(FORMATS.values())
