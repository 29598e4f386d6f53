"""Every document of every format is checked against the schema itself, and the checks are shown to bite.

ECS and OCSF rules come from the released schema files (see tests/schema_validation.py for where they are
looked up and how OCSF classes are compiled); the HEC envelope against the connector's strict parse and the
CIM data model its `action` selects; the native record against its JSON Schema.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.events.catalog import EVENT_TYPES, EventType, Variant
from bridge.formats import FORMATS
from tests.schema_validation import (
    CIM_DATASETS,
    ECS_FLAT,
    OCSF_DIR,
    UNKNOWN_DELIVERY,
    EcsSchema,
    OcsfSchema,
    case_name,
    classified_deliveries,
    deliveries,
    load_ecs,
    load_ocsf,
    normalized,
    required_paths,
    schema_path_or_skip,
    validate_ecs,
    validate_hec,
    validate_native,
    validate_ocsf,
)

Mutation = Callable[[dict[str, Any]], object]
DELIVERIES = deliveries()
IDS = [case_name(delivery) for delivery in DELIVERIES]
CLASSIFIED = classified_deliveries()
CLASSIFIED_IDS = [f"{row.name}-{variant or 'own'}" for row, variant, _ in CLASSIFIED]


@pytest.fixture(scope="module")
def ecs() -> EcsSchema:
    return load_ecs(schema_path_or_skip(ECS_FLAT))


@pytest.fixture(scope="module")
def ocsf() -> OcsfSchema:
    return load_ocsf(schema_path_or_skip(OCSF_DIR))


def document(format_name: str, delivery: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(FORMATS[format_name].encode(normalized(delivery)))
    return decoded


def mutated(original: dict[str, Any], mutation: Mutation) -> dict[str, Any]:
    copied = copy.deepcopy(original)
    mutation(copied)
    return copied


DROP = object()


def changed_at(original: dict[str, Any], path: Sequence[str], value: object = DROP) -> dict[str, Any]:
    """A copy of `original` with the value at `path` replaced, or dropped."""
    copied = copy.deepcopy(original)
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    if value is DROP:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copied


# ------------------------------------------------------------------------------ every document is valid


@pytest.mark.parametrize("delivery", DELIVERIES, ids=IDS)
def test_ecs_document_is_valid_ecs_9_4(delivery: dict[str, Any], ecs: EcsSchema) -> None:
    assert validate_ecs(document("ecs", delivery), ecs) == []


@pytest.mark.parametrize("delivery", DELIVERIES, ids=IDS)
def test_ocsf_document_is_valid_ocsf_1_8(delivery: dict[str, Any], ocsf: OcsfSchema) -> None:
    assert validate_ocsf(document("ocsf", delivery), ocsf) == []


@pytest.mark.parametrize("delivery", DELIVERIES, ids=IDS)
def test_hec_envelope_passes_the_connectors_strict_parse_and_its_cim_model(delivery: dict[str, Any]) -> None:
    assert validate_hec(FORMATS["splunk_hec"].encode(normalized(delivery))) == []


@pytest.mark.parametrize("delivery", DELIVERIES, ids=IDS)
def test_native_document_matches_the_idaas_event_1_schema(delivery: dict[str, Any]) -> None:
    assert validate_native(document("native", delivery)) == []


IDAAS_FIELDS = st.sampled_from(
    ["subject", "subjectName", "subjectType", "resourceName", "sourceIp", "token", "subscriberAdminRoleName",
     "entityType", "entityId", "entityName", "entityAttributes", "anything"]
)  # fmt: skip
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # orjson parses larger ones as floats
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.ip_addresses().map(str),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(
    type_name=st.sampled_from([row.name for row in EVENT_TYPES] + [str(UNKNOWN_DELIVERY["type"])]),
    data=st.dictionaries(IDAAS_FIELDS, JSON_VALUES, max_size=8),
)
def test_whatever_data_holds_every_format_stays_valid(type_name: str, data: dict[str, Any]) -> None:
    """IDaaS `data` is lenient (any field missing or mistyped): no input may make a SIEM reject a document."""
    ecs, ocsf = load_ecs(schema_path_or_skip(ECS_FLAT)), load_ocsf(schema_path_or_skip(OCSF_DIR))
    delivery = {**UNKNOWN_DELIVERY, "type": type_name, "data": data}
    assert validate_ecs(document("ecs", delivery), ecs) == []
    assert validate_ocsf(document("ocsf", delivery), ocsf) == []
    assert validate_hec(FORMATS["splunk_hec"].encode(normalized(delivery))) == []
    assert validate_native(document("native", delivery)) == []


# --------------------------------------------------------------------------- and the validators bite: OCSF


@pytest.mark.parametrize("delivery", DELIVERIES, ids=IDS)
def test_dropping_any_required_ocsf_attribute_fails_validation(
    delivery: dict[str, Any], ocsf: OcsfSchema
) -> None:
    event = document("ocsf", delivery)
    paths = list(required_paths(event, ocsf.classes[event["class_uid"]], ocsf))
    assert ("class_uid",) in paths and ("metadata", "product") in paths
    for path in paths:
        assert validate_ocsf(changed_at(event, path), ocsf), f"dropping {'.'.join(path)} went unnoticed"


#: name → (mutation, a fragment of the error it must cause).
OCSF_MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "class_uid dropped": (lambda d: d.pop("class_uid"), "class_uid: None is no OCSF"),
    "class_uid of another class": (lambda d: d.update(class_uid=3004), "type_uid"),
    "category_uid not the class's": (
        lambda d: d.update(category_uid=0),
        "category_uid: 0 is not one of ['3']",
    ),
    "activity_id not in the class enum": (
        lambda d: d.update(activity_id=42, type_uid=300242),
        "activity_id: 42",
    ),
    "type_uid not class_uid*100+activity_id": (lambda d: d.update(type_uid=300199), "type_uid: 300199"),
    "status_id not in the enum": (lambda d: d.update(status_id=7), "status_id: 7 is not one of"),
    "severity caption not the enum's": (lambda d: d.update(severity="Low"), "severity: 'Low' should be"),
    "time as a string": (lambda d: d.update(time="2027-02-09T08:41:27Z"), "is not a timestamp_t"),
    "unknown attribute": (lambda d: d.update(login_name="x"), "login_name: not an attribute"),
    "profile attribute without the profile": (lambda d: d.update(device={}), "device: not an attribute"),
    "metadata.version not the schema's": (
        lambda d: d["metadata"].update(version="1.9.0"),
        "metadata.version",
    ),
    "auth factor id unknown": (
        lambda d: d["auth_factors"][0].update(factor_type_id=12),
        "auth_factors[0].factor_type_id: 12",
    ),
    "source ip not an ip_t": (lambda d: d["src_endpoint"].update(ip="not-an-ip"), "the ip_t pattern"),
    "user without uid, name or account": (
        lambda d: d.update(user={"type_id": 1, "type": "User"}),
        "user: constraint at_least_one",
    ),
    "service and dst_endpoint both missing": (lambda d: d.pop("service"), "['service', 'dst_endpoint']"),
    "array attribute as a single value": (
        lambda d: d.update(auth_factors=d["auth_factors"][0]),
        "auth_factors: an array expected",
    ),
}


@pytest.mark.parametrize(("mutation", "expected"), OCSF_MUTATIONS.values(), ids=OCSF_MUTATIONS.keys())
def test_ocsf_validation_rejects(mutation: Mutation, expected: str, ocsf: OcsfSchema) -> None:
    event = document("ocsf", DELIVERIES[1])  # authentication.failed: every attribute the mutations touch
    assert validate_ocsf(event, ocsf) == []
    errors = validate_ocsf(mutated(event, mutation), ocsf)
    assert any(expected in error for error in errors), errors


@pytest.mark.parametrize(("row", "variant", "delivery"), CLASSIFIED, ids=CLASSIFIED_IDS)
def test_every_classification_of_every_row_is_valid_ocsf_and_ecs_with_its_auth_factor(
    row: EventType, variant: Variant | None, delivery: dict[str, Any], ocsf: OcsfSchema, ecs: EcsSchema
) -> None:
    """Variants are checked against the schemas through the events they file, like the rows' own ones."""
    classification = row.classify(variant)
    event = document("ocsf", delivery)
    assert validate_ocsf(event, ocsf) == [] and validate_ecs(document("ecs", delivery), ecs) == []
    assert validate_hec(FORMATS["splunk_hec"].encode(normalized(delivery))) == []
    factor = classification.ocsf.factor
    if factor is None:  # a sign-in names its factor per event (tested in test_formats_mapping)
        assert row.category in ("authentication", "user")
    else:
        assert event["auth_factors"] == [{"factor_type_id": factor.type_id, "factor_type": factor.type}]


def test_ocsf_classes_are_compiled_as_the_ocsf_server_compiles_them(ocsf: OcsfSchema) -> None:
    authentication, account_change = ocsf.classes[3002], ocsf.classes[3001]
    # extends: Authentication ← iam ← base_event; the enums of all three and the dictionary merge.
    assert authentication.attributes["src_endpoint"].type == "network_endpoint"  # from iam
    assert authentication.attributes["metadata"].requirement == "required"  # from base_event
    assert {"0", "1", "7", "99"} <= set(authentication.attributes["activity_id"].enum or {})
    assert (account_change.attributes["activity_id"].enum or {})["10"] == "MFA Factor Enable"
    # $include of profiles: their attributes are tagged, unless a class takes one over (iam's `actor`).
    assert authentication.attributes["device"].profile == "host"
    assert authentication.attributes["actor"].profile is None
    # Objects: `user` keeps its own constraint, `product` inherits `_entity`'s.
    assert ocsf.objects["user"].constraints == {"at_least_one": ["account", "name", "uid"]}
    assert ocsf.objects["product"].constraints == {"at_least_one": ["name", "uid"]}


# ---------------------------------------------------------------------------- and the validators bite: ECS


def _ecs_leaves(node: dict[str, Any], ecs: EcsSchema, prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        path = f"{prefix}{key}"
        if path in ecs.fields:
            yield path
        elif isinstance(value, dict) and key != "entrust_idaas":
            yield from _ecs_leaves(value, ecs, f"{path}.")


#: A value of the wrong JSON type for each Elasticsearch type ECS uses in our documents.
WRONG_VALUE = {"keyword": 7, "date": 1802162582, "ip": "not-an-ip", "long": "7", "boolean": "true"}


@pytest.mark.parametrize("delivery", DELIVERIES, ids=IDS)
def test_any_ecs_field_with_a_wrong_type_fails_validation(delivery: dict[str, Any], ecs: EcsSchema) -> None:
    doc = document("ecs", delivery)
    paths = list(_ecs_leaves(doc, ecs))
    assert {"@timestamp", "event.id", "event.created"} <= set(paths)
    for path in paths:
        field = ecs.fields[path]
        wrong = [WRONG_VALUE[field.type]] if field.array else WRONG_VALUE[field.type]
        bad = changed_at(doc, path.split("."), wrong)
        assert validate_ecs(bad, ecs), f"{path} = {wrong!r} went unnoticed"


ECS_MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "@timestamp dropped": (lambda d: d.pop("@timestamp"), "@timestamp: required by ECS"),
    "ecs.version dropped": (lambda d: d.pop("ecs"), "ecs.version: required by ECS"),
    "field ECS does not define": (lambda d: d["user"].update(login="mira"), "user.login: not an ECS"),
    "vendor field outside the namespace": (
        lambda d: d.update(resource_name="User Portal"),
        "resource_name: not an ECS",
    ),
    "event.category not allowed": (
        lambda d: d["event"].update(category=["login"]),
        "'login' is not an allowed value",
    ),
    "event.type not expected for the category": (
        lambda d: d["event"].update(type=["creation"]),
        "'creation' is not expected with event.category",
    ),
    "event.type as a single value": (lambda d: d["event"].update(type="start"), "event.type: ECS normalizes"),
    "event.outcome not allowed": (
        lambda d: d["event"].update(outcome="denied"),
        "'denied' is not an allowed",
    ),
    "event.id as an array": (lambda d: d["event"].update(id=[d["event"]["id"]]), "to a single value"),
    "null instead of omitting": (lambda d: d["event"].update(reason=None), "event.reason: null"),
    "empty object": (lambda d: d.update(observer={}), "observer: null or empty object"),
}


@pytest.mark.parametrize(("mutation", "expected"), ECS_MUTATIONS.values(), ids=ECS_MUTATIONS.keys())
def test_ecs_validation_rejects(mutation: Mutation, expected: str, ecs: EcsSchema) -> None:
    doc = document("ecs", DELIVERIES[1])
    assert validate_ecs(doc, ecs) == []
    errors = validate_ecs(mutated(doc, mutation), ecs)
    assert any(expected in error for error in errors), errors


# ---------------------------------------------------------------------------- and the validators bite: HEC

HEC_MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "unknown top-level key": (lambda d: d.update(timestamp=d["time"]), "timestamp: not a HEC envelope key"),
    "time as a string": (lambda d: d.update(time=str(d["time"])), "time: '"),
    "time finer than milliseconds": (lambda d: d.update(time=d["time"] + 0.0001), "at most millisecond"),
    "fields value not a string": (
        lambda d: d["fields"].update(attempt=1),
        "fields: must map names to strings",
    ),
    "event missing": (lambda d: d.pop("event"), "event: a non-empty object or string is required"),
    "sourcetype outside entrust:idaas:<category>": (
        lambda d: d.update(sourcetype="_json"),
        "sourcetype: '_json'",
    ),
    "host missing": (lambda d: d.pop("host"), "host: a non-empty string is required"),
    "CIM Authentication without src": (lambda d: d["event"].pop("src"), "event.src: required by the CIM"),
    "CIM action of no data model": (lambda d: d["event"].update(action="blocked"), "in no CIM data model"),
    "CIM account change with a bad status": (
        lambda d: d["event"].update(action="modified", status="done"),
        "event.status: 'done'",
    ),
}


@pytest.mark.parametrize(("mutation", "expected"), HEC_MUTATIONS.values(), ids=HEC_MUTATIONS.keys())
def test_hec_validation_rejects(mutation: Mutation, expected: str) -> None:
    envelope = document("splunk_hec", DELIVERIES[1])
    assert validate_hec(orjson.dumps(envelope)) == []
    errors = validate_hec(orjson.dumps(mutated(envelope, mutation)))
    assert any(expected in error for error in errors), errors


@pytest.mark.parametrize(("row", "variant", "delivery"), CLASSIFIED, ids=CLASSIFIED_IDS)
def test_each_hec_event_lands_in_the_cim_dataset_its_classification_names(
    row: EventType, variant: Variant | None, delivery: dict[str, Any]
) -> None:
    cim = row.classify(variant).cim
    action = document("splunk_hec", delivery)["event"].get("action")
    assert (CIM_DATASETS[action] if action else None) == ((cim.model, cim.dataset) if cim else None)


def test_hec_validation_rejects_what_is_not_a_json_object() -> None:
    assert validate_hec(b'{"time": 1,') and validate_hec(b"[]")


# ------------------------------------------------------------------------- and the validators bite: native

NATIVE_MUTATIONS: dict[str, Mutation] = {
    "id dropped": lambda d: d.pop("id"),
    "unknown key": lambda d: d.update(extra=1),
    "outcome not in the enum": lambda d: d.update(outcome="ok"),
    "occurred_at not RFC 3339 UTC millis": lambda d: d.update(occurred_at="2027-02-09"),
}


@pytest.mark.parametrize("mutation", NATIVE_MUTATIONS.values(), ids=NATIVE_MUTATIONS.keys())
def test_native_validation_rejects(mutation: Mutation) -> None:
    assert validate_native(mutated(document("native", DELIVERIES[0]), mutation))


def test_schema_data_is_read_from_the_directory_the_env_var_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("IDAAS_SCHEMAS_DIR", str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match=str(tmp_path)):
        schema_path_or_skip(ECS_FLAT)
