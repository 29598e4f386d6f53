"""The Elastic consumers in deploy/elastic, checked without Elastic: they parse, they decode the bridge's ECS
documents into its dataset de-duplicated by the IDaaS delivery id, and they lose no record they cannot parse.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import KafkaSettings
from bridge.formats import ecs
from tests.logstash_config import Conditional, Plugin, get_field, parse, plugins, run_filter, sprintf

ELASTIC = Path(__file__).resolve().parents[2] / "deploy" / "elastic"
#: The topics a SIEM consumer reads: every default topic but the dead letters (always native, for people).
SIEM_TOPICS = sorted(t.name for key, t in KafkaSettings().topics.items() if key != "deadletter")
DOCUMENT_ID = "[@metadata][document_id]"


@pytest.fixture(scope="module")
def agent_stream() -> dict[str, Any]:
    policy = yaml.safe_load((ELASTIC / "elastic-agent-kafka-input.yml").read_text())
    [agent_input] = policy["inputs"]
    assert agent_input["type"] == "kafka"
    [stream] = agent_input["streams"]
    stream_: dict[str, Any] = stream
    return stream_


@pytest.fixture(scope="module")
def pipeline() -> dict[str, list[Plugin | Conditional]]:
    return parse((ELASTIC / "logstash.conf").read_text())


# ------------------------------------------------------------------------------------------ Elastic Agent


def test_the_agent_decodes_each_record_to_the_root_of_the_ecs_dataset(agent_stream: dict[str, Any]) -> None:
    assert sorted(agent_stream["topics"]) == SIEM_TOPICS
    assert agent_stream["data_stream"]["dataset"] == ecs.DATASET
    assert agent_stream["parsers"] == [
        {"ndjson": {"target": "", "overwrite_keys": True, "add_error_key": True}}
    ]


def test_the_agent_deduplicates_by_event_id_and_leaves_records_without_one_their_own_id(
    agent_stream: dict[str, Any],
) -> None:
    fingerprints = [p["fingerprint"] for p in agent_stream["processors"] if "fingerprint" in p]
    assert fingerprints == [{"fields": ["event.id"], "target_field": "@metadata._id", "ignore_missing": True}]


def test_no_agent_processor_deletes_the_raw_record(agent_stream: dict[str, Any]) -> None:
    """When decoding fails, `message` is the only copy of the record: nothing may drop it."""
    for processor in agent_stream["processors"]:
        for name, options in processor.items():
            dropped = options.get("fields", []) if name == "drop_fields" else []
            assert "message" not in dropped, processor
            assert name != "include_fields", "include_fields would drop message too"


# ------------------------------------------------------------------------------------------------ Logstash


def test_logstash_reads_every_siem_topic_as_json_with_its_kafka_position(pipeline: dict[str, Any]) -> None:
    [kafka] = plugins(pipeline["input"], "kafka")
    assert sorted(kafka.options["topics"]) == SIEM_TOPICS
    assert kafka.options["codec"] == "json"
    # The fingerprint of an unparseable record is made of [@metadata][kafka][*], which only these add.
    assert kafka.options["decorate_events"] in ("basic", "extended", "true")


def test_logstash_branches_on_event_id_and_fingerprints_everything_else(pipeline: dict[str, Any]) -> None:
    [branching] = [item for item in pipeline["filter"] if isinstance(item, Conditional)]
    (condition, with_id), (otherwise, without_id) = branching.branches
    assert (condition, otherwise) == ("[event][id]", None)
    assert [(p.name, p.options) for p in with_id if isinstance(p, Plugin)] == [
        ("mutate", {"copy": {"[event][id]": DOCUMENT_ID}})
    ]
    [fingerprint] = plugins(without_id, "fingerprint")
    assert fingerprint.options["target"] == DOCUMENT_ID
    assert fingerprint.options["method"] == "SHA256" and fingerprint.options["concatenate_sources"] == "true"
    assert {"[@metadata][kafka][partition]", "[@metadata][kafka][offset]"} <= set(
        fingerprint.options["source"]
    )


def test_logstash_writes_the_ecs_data_stream_with_the_branch_id_and_silences_duplicate_conflicts(
    pipeline: dict[str, Any],
) -> None:
    [output] = plugins(pipeline["output"], "elasticsearch")
    assert output.options["data_stream"] == "true"
    assert output.options["data_stream_dataset"] == ecs.DATASET
    assert output.options["document_id"] == "%{" + DOCUMENT_ID + "}"
    assert output.options["silence_errors_in_log"] == ["version_conflict_engine_exception"]


def unparseable(partition: int, offset: int, raw: str = "not json {") -> dict[str, Any]:
    """What the kafka input and json codec make of a record that is not JSON."""
    return {
        "message": raw,
        "tags": ["_jsonparsefailure"],
        "@metadata": {"kafka": {"topic": "idaas.user", "partition": partition, "offset": offset}},
    }


def document_id(pipeline: dict[str, Any], event: dict[str, Any]) -> str:
    [output] = plugins(pipeline["output"], "elasticsearch")
    return sprintf(output.options["document_id"], run_filter(pipeline["filter"], event))


def test_two_unparseable_records_get_different_ids_and_a_redelivered_one_the_same(
    pipeline: dict[str, Any],
) -> None:
    first, second = document_id(pipeline, unparseable(0, 17)), document_id(pipeline, unparseable(0, 18))
    other_partition = document_id(pipeline, unparseable(1, 17))
    assert len({first, second, other_partition}) == 3
    assert all(re.fullmatch("[0-9a-f]{64}", value) for value in (first, second))  # SHA-256, hex
    assert document_id(pipeline, unparseable(0, 17, raw="same position, redelivered")) == first
    # The fingerprint filter's own definition, by hand: sorted `|name|value` pairs, a final `|`, SHA-256.
    text = (
        "|[@metadata][kafka][offset]|17|[@metadata][kafka][partition]|0|[@metadata][kafka][topic]|idaas.user|"
    )
    assert first == hashlib.sha256(text.encode()).hexdigest()


def test_a_bridge_document_keeps_its_delivery_id_and_its_dataset(pipeline: dict[str, Any]) -> None:
    event = {
        "event": {"id": "01a7e3c2-4b5d-7e6f-8a9b-0c1d2e3f4a5b", "dataset": ecs.DATASET},
        "@metadata": {"kafka": {"topic": "idaas.user", "partition": 0, "offset": 5}},
    }
    assert document_id(pipeline, event) == "01a7e3c2-4b5d-7e6f-8a9b-0c1d2e3f4a5b"
    assert get_field(event, "[event][dataset]") == ecs.DATASET


def test_an_unparseable_record_is_kept_whole_and_marked_outside_the_dataset(pipeline: dict[str, Any]) -> None:
    event = run_filter(pipeline["filter"], unparseable(0, 3, raw='{"truncated'))
    assert event["message"] == '{"truncated' and event["event"]["dataset"] == "entrust_idaas.parse_failure"
