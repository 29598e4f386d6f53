"""What `data` decides beyond the type: magic-link purpose, pending authenticators, admin password resets,
the Kafka key, the failure reason and the authenticator names, stated as behaviour in every format."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bridge.events.authenticators import AUTHENTICATORS
from bridge.events.samples import sample_deliveries
from bridge.formats import get_format
from tests.schema_validation import normalized, vendor_examples

SAMPLES = {delivery["type"]: delivery for delivery in sample_deliveries()}
EXAMPLES = {example["type"]: example for example in vendor_examples()}


def changed(
    delivery: dict[str, Any], attributes: dict[str, Any] | None = None, **data: Any
) -> dict[str, Any]:
    """A copy of `delivery` with `data` fields replaced (None drops one) and entityAttributes updated."""
    copied = copy.deepcopy(delivery)
    for key, value in data.items():
        if value is None:
            copied["data"].pop(key, None)
        else:
            copied["data"][key] = value
    if attributes is not None:
        merged = {**copied["data"].get("entityAttributes", {}), **attributes}
        copied["data"]["entityAttributes"] = {k: v for k, v in merged.items() if v is not None}
    return copied


def encoded(format_name: str, delivery: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(get_format(format_name).encode(normalized(delivery)))
    return document


def filed(delivery: dict[str, Any]) -> tuple[object, ...]:
    """(OCSF class, activity id, activity name, status id; ECS category, type, outcome; CIM action; native
    outcome) of one delivery."""
    ocsf, ecs = encoded("ocsf", delivery), encoded("ecs", delivery)
    return (
        ocsf["class_uid"],
        ocsf["activity_id"],
        ocsf["activity_name"],
        ocsf["status_id"],
        ecs["event"]["category"],
        ecs["event"]["type"],
        ecs["event"].get("outcome"),
        encoded("splunk_hec", delivery)["event"].get("action"),
        encoded("native", delivery)["outcome"],
    )


# ------------------------------------------------------------------------------------------- magic links

REGISTRATION_LINK = (
    3001,
    99,
    "Registration Magic Link Sent",
    1,
    ["iam"],
    ["user", "info"],
    None,
    None,
    "success",
)
SIGN_IN_LINK = (3002, 99, "Magic Link Sent", 1, ["authentication"], ["info"], None, None, "success")
UNKNOWN_PURPOSE_LINK = (3002, 99, "Magic Link Sent", 0, ["authentication"], ["info"], None, None, "unknown")


def test_the_documented_registration_magic_link_is_an_account_lifecycle_notification_not_a_sign_in() -> None:
    assert filed(EXAMPLES["magiclink.email.sent"]) == REGISTRATION_LINK
    assert filed(SAMPLES["magiclink.email.sent"]) == REGISTRATION_LINK
    assert "service" not in encoded("ocsf", EXAMPLES["magiclink.email.sent"])  # an Authentication attribute


@pytest.mark.parametrize("link_type", ["SignIn", "sign-in", "SIGN_IN", "Authentication", "login", "Logon"])
def test_a_sign_in_magic_link_is_a_step_of_an_authentication(link_type: str) -> None:
    delivery = changed(SAMPLES["magiclink.email.sent"], {"magicLinkType": link_type})
    assert filed(delivery) == SIGN_IN_LINK


@pytest.mark.parametrize(
    "link_type", ["Invitation", "", 7, None], ids=["unknown", "empty", "number", "missing"]
)
def test_a_magic_link_of_unknown_purpose_claims_no_success(link_type: object) -> None:
    delivery = changed(SAMPLES["magiclink.email.sent"], {"magicLinkType": link_type})
    assert filed(delivery) == UNKNOWN_PURPOSE_LINK
    assert encoded("ocsf", delivery)["status"] == "Unknown"


# ---------------------------------------------------------------------------------- pending authenticators

ENABLED = (10, "MFA Factor Enable")
PENDING = (99, "MFA Factor Pending")


@pytest.mark.parametrize(
    ("type_name", "attributes", "expected"),
    [
        ("grid.created", {"state": "PENDING"}, PENDING),
        ("grid.created", {"state": "pending"}, PENDING),
        ("grid.created", {"state": "ACTIVE"}, ENABLED),
        ("grid.created", {"state": None}, ENABLED),
        ("face.biometric.created", {"status": "ACTIVATING"}, PENDING),
        ("face.biometric.created", {"status": "ACTIVE"}, ENABLED),
        ("face.biometric.created", {"status": None}, ENABLED),
        # The state keys are the category's own: a grid `status` or a face `state` says nothing.
        ("grid.created", {"state": None, "status": "PENDING"}, ENABLED),
        ("face.biometric.created", {"status": None, "state": "ACTIVATING"}, ENABLED),
    ],
)
def test_an_authenticator_not_active_yet_is_not_mfa_factor_enable(
    type_name: str, attributes: dict[str, Any], expected: tuple[int, str]
) -> None:
    delivery = changed(SAMPLES[type_name], attributes)
    ocsf = encoded("ocsf", delivery)
    assert (ocsf["activity_id"], ocsf["activity_name"]) == expected
    assert (
        ocsf["class_uid"] == 3001
        and ocsf["auth_factors"] == encoded("ocsf", SAMPLES[type_name])["auth_factors"]
    )
    ecs, hec = encoded("ecs", delivery), encoded("splunk_hec", delivery)
    assert (ecs["event"]["type"], ecs["event"]["outcome"]) == (["user", "change"], "success")
    assert hec["event"]["action"] == "modified"


def test_the_documented_pending_grid_card_and_activating_face_are_pending() -> None:
    for type_name in ("grid.created", "face.biometric.created"):
        assert encoded("ocsf", EXAMPLES[type_name])["activity_name"] == "MFA Factor Pending"


# ---------------------------------------------------------------------------------------- password resets

ADMIN = {
    "subject": "0f9e8d7c-6b5a-4f3e-9d2c-1b0a9f8e7d6c",
    "subjectName": "ops.admin",
    "resourceName": "Administration Portal",
    "subscriberAdminRoleName": "Help Desk Administrator",
}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({}, (3, "Password Change"), id="self-service in the User Portal"),
        pytest.param(ADMIN, (4, "Password Reset"), id="an admin, in the Administration Portal"),
        pytest.param({**ADMIN, "resourceName": "API"}, (4, "Password Reset"), id="an admin role elsewhere"),
        pytest.param({**ADMIN, "subscriberAdminRoleName": None}, (4, "Password Reset"), id="admin portal"),
        pytest.param({**ADMIN, "entityId": None}, (4, "Password Reset"), id="no entity id"),
        pytest.param(
            {**ADMIN, "entityId": ADMIN["subject"]}, (3, "Password Change"), id="an admin's own password"
        ),
    ],
)
def test_a_password_set_by_an_admin_for_someone_else_is_a_reset(
    data: dict[str, Any], expected: tuple[int, str]
) -> None:
    ocsf = encoded("ocsf", changed(SAMPLES["password.updated"], **data))
    assert (ocsf["class_uid"], ocsf["activity_id"], ocsf["activity_name"]) == (3001, *expected)
    assert ocsf["auth_factors"] == [{"factor_type_id": 11, "factor_type": "Password"}]


def test_the_documented_password_update_is_a_users_own_change() -> None:
    assert encoded("ocsf", EXAMPLES["password.updated"])["activity_name"] == "Password Change"


# -------------------------------------------------------------------------------------------- Kafka key


@pytest.mark.parametrize(
    ("delivery", "expected"),
    [
        pytest.param(EXAMPLES["face.biometric.created"], "john", id="admin face: entityAttributes.userId"),
        pytest.param(SAMPLES["face.biometric.created"], "sam.whitford", id="admin face sample"),
        pytest.param(SAMPLES["magiclink.email.sent"], "sam.whitford", id="admin magic link: entityName"),
        pytest.param(SAMPLES["user.created"], "tomas.reyes", id="admin user creation: entityName"),
        pytest.param(SAMPLES["user.deleted"], "tomas.reyes", id="admin user deletion: entityName"),
        pytest.param(SAMPLES["passkey.created"], "lena.park", id="self-service: subjectName"),
        pytest.param(SAMPLES["authentication.failed"], "mira.okafor", id="sign-in: subjectName"),
        pytest.param(
            changed(SAMPLES["kba.question.created"], **ADMIN),
            SAMPLES["kba.question.created"]["accountId"],
            id="admin KBA naming no target: the account, not the admin",
        ),
        pytest.param(
            changed(SAMPLES["passkey.created"], subjectName=None),
            SAMPLES["passkey.created"]["data"]["subject"],
            id="self-service without a username: the user's id",
        ),
    ],
)
def test_the_kafka_key_is_the_affected_user_wherever_a_field_names_them(
    delivery: dict[str, Any], expected: str
) -> None:
    assert normalized(delivery).key == expected


def test_one_users_self_service_and_admin_events_share_a_key() -> None:
    """sam.whitford acts on his grid card himself; an admin enrolls his face and sends him a link."""
    keys = {
        normalized(SAMPLES[name]).key
        for name in ("grid.created", "grid.email.sent", "face.biometric.created", "magiclink.email.sent")
    }
    assert keys == {"sam.whitford"}


# ----------------------------------------------------------------------------------------- failure reason


def reason_everywhere(delivery: dict[str, Any]) -> set[object]:
    """The reason as each format carries it (None where one is absent)."""
    return {
        encoded("native", delivery)["reason"],
        encoded("ecs", delivery)["event"].get("reason"),
        encoded("ocsf", delivery).get("status_detail"),
        encoded("splunk_hec", delivery)["event"].get("reason"),
    }


@pytest.mark.parametrize(
    ("data", "attributes", "expected"),
    [
        pytest.param({}, {"reason": "INVALID_OTP"}, "INVALID_OTP", id="guessed key under entityAttributes"),
        pytest.param({"failureReason": "LOCKED"}, {}, "LOCKED", id="guessed key in data"),
        pytest.param({}, {"errorCode": 4012}, "errorCode: 4012", id="another reason-like key, not text"),
        pytest.param(
            {"denialCause": {"code": "E1"}},
            {"errorMessage": "bad code"},
            'bad code; denialCause: {"code":"E1"}',
            id="a guess first, then the others",
        ),
        pytest.param({}, {"registrationRequired": True}, None, id="nothing reason-like"),
        pytest.param({}, {"error": ""}, None, id="empty values are no reason"),
        pytest.param({}, {"x" * 70 + "Error": "E9"}, "x" * 70 + "Error: E9", id="a key too long to remember"),
    ],
)
def test_a_failure_reason_under_any_reason_like_name_reaches_every_format(
    data: dict[str, Any], attributes: dict[str, Any], expected: str | None
) -> None:
    delivery = changed(SAMPLES["authentication.failed"], attributes, **data)
    assert reason_everywhere(delivery) == {expected}


# ------------------------------------------------------------------------------------------ authenticators

#: IDaaS Authentication API name → (OCSF factors, ECS/CIM method).
EXPECTED: dict[str, tuple[list[tuple[int, str]], str]] = {
    "MACHINE": ([(99, "Machine")], "Machine"),
    "PASSWORD": ([(11, "Password")], "Password"),
    "EXTERNAL": ([(99, "External")], "External"),
    "KBA": ([(2, "Security Question")], "Security Question"),
    "TEMP_ACCESS_CODE": ([(99, "Temporary Access Code")], "Temporary Access Code"),
    "OTP": ([(7, "OTP")], "OTP"),
    "GRID": ([(99, "Grid Card")], "Grid Card"),
    "TOKEN": ([(7, "OTP")], "OTP"),
    "TOKENPUSH": ([(5, "Push Notification")], "Push Notification"),
    "FIDO": ([(10, "WebAuthn")], "WebAuthn"),
    "SMARTCREDENTIALPUSH": ([(5, "Push Notification")], "Push Notification"),
    "PASSWORD_AND_SECONDFACTOR": ([(11, "Password"), (99, "Second Factor")], "Password + Second Factor"),
    "SMART_LOGIN": ([(99, "Smart Login")], "Smart Login"),
    "IDP": ([(99, "Identity Provider")], "Identity Provider"),
    "PASSKEY": ([(10, "WebAuthn")], "WebAuthn"),
    "IDP_AND_SECONDFACTOR": (
        [(99, "Identity Provider"), (99, "Second Factor")],
        "Identity Provider + Second Factor",
    ),
    "USER_CERTIFICATE": ([(99, "User Certificate")], "User Certificate"),
    "FACE": ([(4, "Biometric")], "Biometric"),
    "passkey": ([(10, "WebAuthn")], "WebAuthn"),  # names are compared without case
    "SMARTCARD": ([(99, "SMARTCARD")], "SMARTCARD"),  # unknown: verbatim
}


@pytest.mark.parametrize(("token", "expected"), EXPECTED.items(), ids=EXPECTED)
def test_each_idaas_authenticator_name_maps_to_its_factors_and_method_in_every_format(
    token: str, expected: tuple[list[tuple[int, str]], str]
) -> None:
    factors, method = expected
    delivery = changed(SAMPLES["authentication.succeeded"], token=token)
    ocsf, ecs, hec = encoded("ocsf", delivery), encoded("ecs", delivery), encoded("splunk_hec", delivery)
    assert [(f["factor_type_id"], f["factor_type"]) for f in ocsf["auth_factors"]] == factors
    assert ocsf.get("is_mfa", False) == (len(factors) > 1)
    assert ecs["entrust_idaas"]["authentication_method"] == hec["event"]["authentication_method"] == method
    assert ecs["entrust_idaas"]["authenticator"] == hec["event"]["data"]["token"] == token


def test_every_authentication_api_name_of_the_issue_is_in_the_table() -> None:
    named = {name for name in EXPECTED if name.isupper() and name != "SMARTCARD"}
    assert named <= set(AUTHENTICATORS) and len(named) == 18


# ---------------------------------------------------------------------------- ECS keeps sign-in attributes


def test_ecs_keeps_the_entity_attributes_of_a_sign_in_which_has_no_entity() -> None:
    ecs = encoded("ecs", EXAMPLES["authentication.succeeded"])
    assert ecs["entrust_idaas"]["entity"] == {"attributes": {"registrationRequired": True}}
