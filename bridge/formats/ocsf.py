"""OCSF 1.8.0 events: Authentication (3002) for sign-ins, Account Change (3001) for account and authenticator
changes, the class and activity of each type taken from its catalog row.

`user` is the account the event is about and `actor.user` who acted (an admin when IDaaS names a role);
`auth_factors` is filled wherever the event names an authenticator. IDaaS `data` fields that have no OCSF
attribute stay under `unmapped` with their IDaaS names. A type without a catalog row becomes a Base Event
(class 0, activity 0 Unknown) with all of `data` under `unmapped`: valid OCSF that loses nothing.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from bridge.events.catalog import (
    ACCOUNT_CHANGE,
    AUTHENTICATION,
    BIOMETRIC,
    EMAIL,
    GRID_CARD,
    OTP,
    PASSWORD,
    PUSH,
    SECURITY_QUESTION,
    WEBAUTHN,
    AuthFactor,
    EventType,
)
from bridge.events.model import Event, Party
from bridge.formats._fields import PRODUCT, VENDOR, epoch_millis, ip_or_none
from bridge.formats.base import EventFormat

OCSF_VERSION: Final = "1.8.0"
#: class_uid → class_name; 0 is the Base Event that types without a catalog row become.
CLASS_NAMES: Final = {0: "Base Event", AUTHENTICATION: "Authentication", ACCOUNT_CHANGE: "Account Change"}
#: category_uid (class_uid // 1000) → category_name.
CATEGORY_NAMES: Final = {0: "Uncategorized", 3: "Identity & Access Management"}
#: outcome → (status_id, status).
STATUS: Final = {"success": (1, "Success"), "failure": (2, "Failure"), "unknown": (0, "Unknown")}
#: A sign-in's IDaaS `token` → its factor; authenticator events take theirs from their catalog row.
SIGN_IN_FACTORS: Final = {
    "PASSWORD": PASSWORD,
    "KBA": SECURITY_QUESTION,
    "OTP": OTP,
    "TOKEN": OTP,
    "TOKENPUSH": PUSH,
    "SMARTCREDENTIALPUSH": PUSH,
    "FIDO": WEBAUTHN,
    "PASSKEY": WEBAUTHN,
    "FACE": BIOMETRIC,
    "MAGICLINK": EMAIL,
    "GRID": GRID_CARD,
}
#: The `data` fields every class maps to an attribute; the rest is `unmapped`.
MAPPED_FIELDS: Final = frozenset({"subject", "subjectName", "subjectType", "resourceName", "token"})
MAPPED_FIELDS_AND_IP: Final = MAPPED_FIELDS | {"sourceIp"}
#: OCSF requires `user`; an admin action on an account IDaaS does not name gets the CIM-style placeholder.
UNKNOWN_USER: Final = {"name": "unknown", "type_id": 0, "type": "Unknown"}
PRODUCT_OBJECT: Final = {"name": PRODUCT, "vendor_name": VENDOR}


def _user(party: Party, admin: bool = False) -> dict[str, Any] | None:
    """The OCSF user, or None when IDaaS names no one (the object needs a uid or a name)."""
    if party.id is None and party.name is None:
        return None
    user: dict[str, Any] = {}
    if party.id is not None:
        user["uid"] = party.id
    if party.name is not None:
        user["name"] = party.name
    if admin:
        user["type_id"], user["type"] = 2, "Admin"
    elif party.type == "USER":
        user["type_id"], user["type"] = 1, "User"
    elif party.type is not None:
        user["type_id"], user["type"] = 99, party.type
    return user


def _auth_factor(event: Event, row: EventType) -> AuthFactor | None:
    """The row's factor, or for a sign-in the one its token names (99 with the IDaaS name if unlisted)."""
    if row.ocsf.factor is not None or event.authenticator is None:
        return row.ocsf.factor
    return SIGN_IN_FACTORS.get(event.authenticator.upper(), AuthFactor(99, event.authenticator))


def _classification(event: Event) -> dict[str, Any]:
    row = event.catalog_row
    if row is None:
        class_uid, activity_id, activity, severity_id, severity = 0, 0, "Unknown", 0, "Unknown"
    else:
        class_uid, activity_id, activity = row.ocsf.class_uid, row.ocsf.activity_id, row.ocsf.activity
        severity_id, severity = 1, "Informational"
    class_name, category_uid = CLASS_NAMES[class_uid], class_uid // 1000
    status_id, status = STATUS[event.outcome]
    return {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": CATEGORY_NAMES[category_uid],
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity}",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
    }


def to_document(event: Event) -> dict[str, Any]:
    document = _classification(event)
    document["time"] = epoch_millis(event.occurred_at)
    document["metadata"] = {
        "version": OCSF_VERSION,
        "product": PRODUCT_OBJECT,
        "uid": event.id,
        "original_event_uid": event.id,
        "original_time": event.occurred_at_text,
        "logged_time": epoch_millis(event.received_at),
        "event_code": event.type,
        "tenant_uid": event.account_id,
        "log_name": event.webhook,
    }
    if event.reason is not None:
        document["status_detail"] = event.reason
    if event.catalog_row is None:
        if event.data:
            document["unmapped"] = event.data
        return document
    document["user"] = _user(event.user) or UNKNOWN_USER
    actor: dict[str, Any] = {}
    if subject := _user(event.subject, admin=event.admin_role is not None):
        actor["user"] = subject
    if event.resource is not None:
        actor["app_name"] = event.resource
    if actor:
        document["actor"] = actor
    if event.catalog_row.ocsf.class_uid == AUTHENTICATION:
        document["service"] = {"name": event.resource or PRODUCT}
    if (factor := _auth_factor(event, event.catalog_row)) is not None:
        document["auth_factors"] = [{"factor_type_id": factor.type_id, "factor_type": factor.type}]
    mapped = MAPPED_FIELDS
    if (ip := ip_or_none(event.source_ip)) is not None:
        document["src_endpoint"] = {"ip": ip}
        mapped = MAPPED_FIELDS_AND_IP
    if unmapped := {key: value for key, value in event.data.items() if key not in mapped}:
        document["unmapped"] = unmapped
    return document


def encode(event: Event) -> bytes:
    return orjson.dumps(to_document(event))


FORMAT = EventFormat(
    name="ocsf", content_type="application/json", schema=f"ocsf/{OCSF_VERSION}", encode=encode
)
