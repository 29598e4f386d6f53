"""The mapping decisions each SIEM format makes, stated once as behaviour (the golden files show the rest)."""

from __future__ import annotations

import configparser
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import KafkaSettings
from bridge.events.catalog import EVENT_TYPES, Classification, EventType, Variant
from bridge.events.samples import sample_deliveries
from bridge.formats import FORMATS, get_format
from bridge.formats._fields import ip_or_none
from tests.schema_validation import (
    CIM_MODELS,
    UNKNOWN_DELIVERY,
    classified_deliveries,
    deliveries,
    normalized,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
#: The topics a SIEM consumer reads: every default topic but the dead letters (always native, for people).
SIEM_TOPICS = sorted(t.name for key, t in KafkaSettings().topics.items() if key != "deadletter")

SAMPLES = {delivery["type"]: delivery for delivery in sample_deliveries()}


def encoded(format_name: str, delivery: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(get_format(format_name).encode(normalized(delivery)))
    return document


def with_data(type_name: str, **data: object) -> dict[str, Any]:
    return {**SAMPLES[type_name], "data": {**SAMPLES[type_name]["data"], **data}}


def test_each_config_format_name_is_registered_with_its_own_schema_header() -> None:
    assert set(FORMATS) == {"native", "ecs", "ocsf", "splunk_hec"}
    assert {f.schema for f in FORMATS.values()} == {
        "idaas.event/1", "ecs/9.4.0", "ocsf/1.8.0", "splunk-hec-event/1"
    }  # fmt: skip
    assert all(f.content_type == "application/json" for f in FORMATS.values())


CLASSIFIED = classified_deliveries()


@pytest.mark.parametrize(
    ("row", "variant", "delivery"), CLASSIFIED, ids=[f"{r.name}-{v or 'own'}" for r, v, _ in CLASSIFIED]
)
def test_every_classification_reaches_each_format(
    row: EventType, variant: Variant | None, delivery: dict[str, Any]
) -> None:
    expected = row.classify(variant)
    assert normalized(delivery).classification is expected
    ecs, ocsf = encoded("ecs", delivery), encoded("ocsf", delivery)
    hec = encoded("splunk_hec", delivery)
    assert (ecs["event"]["category"], ecs["event"]["type"]) == (
        list(expected.ecs.category),
        list(expected.ecs.type),
    )
    assert ecs["event"].get("outcome") == (expected.outcome if expected.ecs.has_outcome else None)
    assert (ocsf["class_uid"], ocsf["activity_id"], ocsf["activity_name"]) == (
        expected.ocsf.class_uid,
        expected.ocsf.activity_id,
        expected.ocsf.activity,
    )
    assert ocsf["status"] == expected.outcome.capitalize()
    assert hec["event"].get("action") == (expected.cim.action if expected.cim else None)
    assert hec["sourcetype"] == f"entrust:idaas:{row.category}"


def test_timestamps_are_the_event_time_and_the_receive_time_in_every_format() -> None:
    delivery = SAMPLES["user.created"]  # eventTime 2027-02-10T14:05:33.218Z
    ecs, ocsf, hec = (encoded(name, delivery) for name in ("ecs", "ocsf", "splunk_hec"))
    assert (ecs["@timestamp"], ecs["event"]["created"]) == (
        "2027-02-10T14:05:33.218Z",
        "2027-03-01T12:00:00.123Z",
    )
    assert "ingested" not in ecs["event"]
    assert (ocsf["time"], ocsf["metadata"]["logged_time"]) == (1802268333218, 1803902400123)
    assert hec["time"] == 1802268333.218


def test_ecs_names_the_actor_as_user_and_the_affected_account_as_target() -> None:
    sign_in = encoded("ecs", SAMPLES["authentication.succeeded"])
    admin_created = encoded("ecs", SAMPLES["user.created"])
    assert sign_in["user"] == {"id": "d3c2b1a0-9f8e-4d7c-8b6a-5f4e3d2c1b0a", "name": "mira.okafor"}
    assert admin_created["user"]["name"] == "ops.admin"
    assert admin_created["user"]["roles"] == ["Help Desk Administrator"]
    assert admin_created["user"]["target"]["name"] == "tomas.reyes"
    assert admin_created["event"]["id"] == SAMPLES["user.created"]["id"]


def test_ocsf_admin_action_has_the_admin_as_actor_and_the_account_as_user() -> None:
    ocsf = encoded("ocsf", SAMPLES["face.biometric.created"])
    assert ocsf["actor"]["user"] == {
        "uid": "0f9e8d7c-6b5a-4f3e-9d2c-1b0a9f8e7d6c", "name": "ops.admin", "type_id": 2, "type": "Admin"
    }  # fmt: skip
    assert ocsf["user"] == {"name": "sam.whitford", "type_id": 1, "type": "User"}
    assert ocsf["auth_factors"] == [{"factor_type_id": 4, "factor_type": "Biometric"}]
    assert ocsf["unmapped"]["subscriberAdminRoleName"] == "Help Desk Administrator"


@pytest.mark.parametrize(
    ("token", "factor"),
    [("PASSKEY", [10, "WebAuthn"]), ("OTP", [7, "OTP"]), ("SMARTCARD", [99, "SMARTCARD"])],
)
def test_ocsf_sign_in_names_its_auth_factor(token: str, factor: list[object]) -> None:
    ocsf = encoded("ocsf", with_data("authentication.succeeded", token=token))
    assert [[f["factor_type_id"], f["factor_type"]] for f in ocsf["auth_factors"]] == [factor]
    assert ocsf["service"] == {"name": "User Portal"}


def test_ocsf_still_has_a_user_when_idaas_names_no_affected_account() -> None:
    delivery = with_data("grid.created", subscriberAdminRoleName="Super Administrator", entityAttributes={})
    assert encoded("ocsf", delivery)["user"] == {"name": "unknown", "type_id": 0, "type": "Unknown"}


def test_a_source_address_that_is_not_an_ip_stays_out_of_the_ip_typed_fields() -> None:
    delivery = with_data("authentication.failed", sourceIp="198.51.100.77, 10.0.0.1")
    ecs, ocsf, hec = (encoded(name, delivery) for name in ("ecs", "ocsf", "splunk_hec"))
    assert ecs["source"] == {"address": "198.51.100.77, 10.0.0.1"} and "ip" not in ecs["related"]
    assert "src_endpoint" not in ocsf and ocsf["unmapped"]["sourceIp"] == "198.51.100.77, 10.0.0.1"
    assert hec["event"]["src"] == "198.51.100.77, 10.0.0.1"


#: Text around the shapes an address takes: digits (ASCII and not), dots, colons, hex letters, zone ids.
ADDRESS_LIKE = st.one_of(
    st.text(alphabet="0123456789.", max_size=17),
    st.text(alphabet="0123456789abcdefABCDEF.:%\n \u0661", max_size=24),
    st.ip_addresses().map(str),
    st.lists(st.text(alphabet="0123456789", min_size=1, max_size=4), min_size=3, max_size=5).map(".".join),
    st.lists(st.integers(0, 300).map(str), min_size=4, max_size=4).map(".".join),
)


@settings(max_examples=3000, deadline=None)
@given(ADDRESS_LIKE)
def test_an_ip_is_recognized_exactly_as_the_ipaddress_module_recognizes_it(text: str) -> None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        assert ip_or_none(text) is None
    else:
        assert ip_or_none(text) == text


def test_a_type_without_a_catalog_row_is_kept_whole_and_classified_as_unknown() -> None:
    ecs, ocsf, hec = (encoded(name, UNKNOWN_DELIVERY) for name in ("ecs", "ocsf", "splunk_hec"))
    assert ecs["event"]["kind"] == "event" and ecs["event"]["action"] == "device.trusted"
    assert not {"category", "type", "outcome"} & set(ecs["event"])
    assert orjson.loads(ecs["event"]["original"]) == UNKNOWN_DELIVERY["data"]
    assert (ocsf["class_uid"], ocsf["category_uid"], ocsf["type_uid"]) == (0, 0, 0)
    assert ocsf["unmapped"] == UNKNOWN_DELIVERY["data"] and ocsf["metadata"]["event_code"] == "device.trusted"
    assert orjson.loads(ocsf["raw_data"]) == UNKNOWN_DELIVERY["data"]
    assert hec["sourcetype"] == "entrust:idaas:unknown" and "action" not in hec["event"]


def test_notification_emails_feed_no_cim_data_model() -> None:
    for type_name in ("grid.email.sent", "grid.password.email.sent", "magiclink.email.sent"):
        event = encoded("splunk_hec", SAMPLES[type_name])["event"]
        assert "action" not in event and event["signature"] == type_name


def test_hec_routing_headers_carry_the_envelopes_own_host_source_and_sourcetype() -> None:
    hec_format = get_format("splunk_hec")
    for delivery in deliveries():
        event = normalized(delivery)
        envelope = orjson.loads(hec_format.encode(event))
        headers = {name: value.decode() for name, value in hec_format.extra_headers(event)}
        assert headers == {
            "splunk.header.host": envelope["host"],
            "splunk.header.source": envelope["source"],
            "splunk.header.sourcetype": envelope["sourcetype"],
        }


def test_hec_fields_are_indexed_strings_and_the_idaas_data_rides_along() -> None:
    hec = encoded("splunk_hec", SAMPLES["passkey.deleted"])
    assert hec["fields"] == {"idaas_event_type": "passkey.deleted", "idaas_webhook": "prod"}
    assert hec["event"]["data"] == SAMPLES["passkey.deleted"]["data"]
    assert (hec["event"]["action"], hec["event"]["object_attrs"]) == ("modified", ["passkey"])
    assert (hec["host"], hec["source"]) == (SAMPLES["passkey.deleted"]["accountId"], "idaas-webhook:prod")


def _splunk_conf(name: str) -> configparser.ConfigParser:
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(DEPLOY / "splunk/TA-entrust-idaas/default" / name)
    return conf


def test_the_splunk_add_on_tags_each_catalog_cim_action_into_its_data_model() -> None:
    eventtypes, tags = _splunk_conf("eventtypes.conf"), _splunk_conf("tags.conf")
    tags_by_action: dict[str, set[str]] = {}
    for name in eventtypes.sections():
        listed = re.search(r"action IN \(([^)]*)\)", eventtypes[name]["search"])
        assert listed is not None, name
        enabled = {tag for tag, state in tags[f"eventtype={name}"].items() if state == "enabled"}
        tags_by_action.update(dict.fromkeys(re.findall(r'"([^"]+)"', listed.group(1)), enabled))
    model_tags = {"Authentication": {"authentication"}, "Change": {"change", "account"}}
    for row in EVENT_TYPES:
        for cim in (row.classification.cim, *(variant.cim for variant in row.variants.values())):
            if cim is not None:
                assert tags_by_action[cim.action] == model_tags[cim.model], row.name
    assert set(tags_by_action) == set(CIM_MODELS)  # the HEC validator checks the same models


def test_the_splunk_add_on_names_itself_in_its_id_stanza() -> None:
    """Splunk identifies an app by `[id] name` (its directory name) and version, as the launcher shows."""
    app = _splunk_conf("app.conf")
    assert app["id"]["name"] == "TA-entrust-idaas" == (DEPLOY / "splunk/TA-entrust-idaas").name
    assert app["id"]["version"] == app["launcher"]["version"]
    assert app["package"]["id"] == app["id"]["name"]


def test_the_splunk_connector_forwards_the_pre_formatted_envelopes_of_every_siem_topic() -> None:
    config = json.loads((DEPLOY / "splunk/connector.json").read_text())["config"]
    assert sorted(config["topics"].split(",")) == SIEM_TOPICS
    assert (config["splunk.hec.raw"], config["splunk.hec.json.event.formatted"]) == ("false", "true")
    assert config["value.converter"] == "org.apache.kafka.connect.storage.StringConverter"


def _docs_row(*first_cells: str) -> list[str]:
    """The cells of the docs/siem.md table line whose leading cells (after a number column) are these."""
    docs = (DEPLOY.parent / "docs/siem.md").read_text()
    for line in docs.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[1 : 1 + len(first_cells)] == list(first_cells):
            return cells[1 + len(first_cells) :]
    raise AssertionError(f"docs/siem.md has no table line for {first_cells}")


def _assert_cells_state(cells: list[str], classification: Classification) -> None:
    ecs_cell, ocsf_cell, cim_cell = cells[:3]
    ecs, ocsf, cim = classification.ecs, classification.ocsf, classification.cim
    outcome = classification.outcome if ecs.has_outcome else "—"
    assert ecs_cell == f"{', '.join(ecs.category)} / {', '.join(ecs.type)} / {outcome}"
    type_uid = ocsf.class_uid * 100 + ocsf.activity_id
    assert ocsf_cell.startswith(f"{ocsf.class_uid} ")
    assert ocsf_cell.endswith(f"/ {ocsf.activity_id} {ocsf.activity} / {type_uid}")
    assert cim_cell.endswith(f"/ `{cim.action}`" if cim else "—")


@pytest.mark.parametrize("row", EVENT_TYPES, ids=lambda row: row.name)
def test_the_mapping_table_in_docs_states_the_catalog_row(row: EventType) -> None:
    cells = _docs_row(f"`{row.name}`")
    _assert_cells_state(cells, row.classification)
    assert cells[3] == f"`entrust:idaas:{row.category}`"


VARIANTS = [(row, variant) for row in EVENT_TYPES for variant in row.variants]


@pytest.mark.parametrize(("row", "variant"), VARIANTS, ids=[f"{r.name}-{v}" for r, v in VARIANTS])
def test_the_variant_table_in_docs_states_each_variant(row: EventType, variant: Variant) -> None:
    cells = _docs_row(f"`{row.name}`", f"`{variant}`")
    _assert_cells_state(cells[1:], row.classify(variant))
