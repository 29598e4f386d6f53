"""OCSF 1.8.0 events: Authentication (3002) for sign-ins, Account Change (3001) for account and authenticator
changes, the class and activity of each event taken from its classification (bridge/events/catalog.py).

`user` is the account the event is about and `actor.user` who acted (an admin when IDaaS names a role);
`auth_factors` is filled wherever the event names an authenticator. IDaaS `data` fields that have no OCSF
attribute stay under `unmapped` with their IDaaS names, and `raw_data` holds the whole `data` object as JSON
text (OCSF's field for the event as received). A type without a catalog row becomes a Base Event (class 0,
activity 0 Unknown) with all of `data` under `unmapped`: valid OCSF that loses nothing.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from bridge.events.authenticators import AuthFactor, describe
from bridge.events.catalog import ACCOUNT_CHANGE, AUTHENTICATION, Classification
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


def _auth_factors(event: Event, classification: Classification) -> tuple[AuthFactor, ...]:
    """The classification's factor, or for a sign-in those its token names (bridge/events/authenticators)."""
    if classification.ocsf.factor is not None:
        return (classification.ocsf.factor,)
    if event.category == "authentication" and event.authenticator is not None:
        return describe(event.authenticator).factors
    return ()


def _classification(event: Event) -> dict[str, Any]:
    if event.classification is None:
        class_uid, activity_id, activity, severity_id, severity = 0, 0, "Unknown", 0, "Unknown"
    else:
        ocsf = event.classification.ocsf
        class_uid, activity_id, activity = ocsf.class_uid, ocsf.activity_id, ocsf.activity
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
    document["raw_data"] = orjson.dumps(event.data).decode()
    classification = event.classification
    if classification is None:
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
    if classification.ocsf.class_uid == AUTHENTICATION:
        document["service"] = {"name": event.resource or PRODUCT}
    if factors := _auth_factors(event, classification):
        document["auth_factors"] = [{"factor_type_id": f.type_id, "factor_type": f.type} for f in factors]
        if len(factors) > 1 and classification.ocsf.class_uid == AUTHENTICATION:
            document["is_mfa"] = True
    mapped = MAPPED_FIELDS
    if (ip := ip_or_none(event.source_ip)) is not None:
        document["src_endpoint"] = {"ip": ip}
        mapped = MAPPED_FIELDS_AND_IP
    if unmapped := {key: value for key, value in event.data.items() if key not in mapped}:
        document["unmapped"] = unmapped
    return document


def encode(event: Event) -> bytes:
    return orjson.dumps(to_document(event))


FORMAT: Final[EventFormat] = EventFormat(
    name="ocsf", content_type="application/json", schema=f"ocsf/{OCSF_VERSION}", encode=encode
)
