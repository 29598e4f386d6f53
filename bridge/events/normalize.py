"""Envelope → Event: the one place that knows how IDaaS lays out `data`.

Every `data` field is optional (the public docs show only part of most payloads), so each lookup tolerates a
missing or mistyped value; the original `data` object travels untouched in the event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from bridge.events.catalog import AUTHENTICATOR_CATEGORIES, lookup
from bridge.events.envelope import Envelope
from bridge.events.model import Event, Party

ADMIN_PORTAL: Final = "Administration Portal"
#: entityType codes whose entityId is the affected user's own id.
USER_ENTITY_TYPES: Final = frozenset({"USERS", "USERPASSWORDS"})
#: entityType codes whose entityName is the affected user's username.
USERNAME_ENTITY_TYPES: Final = frozenset({"USERS", "USERPASSWORDS", "MAGICLINKS"})
#: Keys under entityAttributes that may carry why an authentication failed (not documented by IDaaS).
REASON_KEYS: Final = ("reason", "failureReason", "errorMessage")


def _text(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) and value else None


def _attributes(data: dict[str, Any]) -> dict[str, Any]:
    value = data.get("entityAttributes")
    return value if isinstance(value, dict) else {}


def _affected_user(data: dict[str, Any], subject: Party, by_admin: bool) -> Party:
    """The account the event is about: the target for admin actions, the subject for self-service."""
    if not by_admin:
        return subject
    entity_type = _text(data, "entityType")
    user_id = _text(data, "entityId") if entity_type in USER_ENTITY_TYPES else None
    name = _text(_attributes(data), "userId")
    if name is None and entity_type in USERNAME_ENTITY_TYPES:
        name = _text(data, "entityName")
    return Party(id=user_id, name=name, type="USER" if user_id or name else None)


def normalize(envelope: Envelope, webhook: str, received_at: datetime) -> Event:
    """Build the normalized event; never raises for a valid envelope, whatever `data` holds."""
    data = envelope.data
    row = lookup(envelope.type)
    category = row.category if row is not None else "unknown"
    subject = Party(_text(data, "subject"), _text(data, "subjectName"), _text(data, "subjectType"))
    admin_role = _text(data, "subscriberAdminRoleName")
    resource = _text(data, "resourceName")
    by_admin = category != "authentication" and (admin_role is not None or resource == ADMIN_PORTAL)
    entity_type, entity_id, entity_name = (
        _text(data, "entityType"),
        _text(data, "entityId"),
        _text(data, "entityName"),
    )
    entity = Party(entity_id, entity_name, entity_type) if entity_type or entity_id or entity_name else None
    if category == "authentication":
        authenticator = _text(data, "token")
    elif category in AUTHENTICATOR_CATEGORIES:
        authenticator = category
    else:
        authenticator = None
    attributes = _attributes(data)
    reason = next((value for key in REASON_KEYS if (value := _text(attributes, key))), None)
    return Event(
        id=envelope.id,
        type=envelope.type,
        catalog_row=row,
        category=category,
        action=row.action if row is not None else envelope.type,
        outcome=row.outcome if row is not None else "unknown",
        account_id=envelope.account_id,
        occurred_at=envelope.event_time,
        occurred_at_text=envelope.event_time_text,
        received_at=received_at,
        webhook=webhook,
        subject=subject,
        user=_affected_user(data, subject, by_admin),
        entity=entity,
        initiated_by="admin" if by_admin else "user",
        admin_role=admin_role,
        source_ip=_text(data, "sourceIp"),
        resource=resource,
        authenticator=authenticator,
        reason=reason,
        data=data,
    )
