"""The bridge's own JSON record (`schema: idaas.event/1`): every normalized field plus the original `data`."""

from __future__ import annotations

from typing import Any, Final

import orjson

from bridge.events.model import NATIVE_SCHEMA, Event, Party
from bridge.formats.base import EventFormat, rfc3339


def _party(party: Party | None) -> dict[str, str | None] | None:
    if party is None:
        return None
    return {"id": party.id, "name": party.name, "type": party.type}


def to_document(event: Event) -> dict[str, Any]:
    return {
        "schema": NATIVE_SCHEMA,
        "id": event.id,
        "type": event.type,
        "category": event.category,
        "action": event.action,
        "outcome": event.outcome,
        "account_id": event.account_id,
        "occurred_at": rfc3339(event.occurred_at),
        "received_at": rfc3339(event.received_at),
        "webhook": event.webhook,
        "initiated_by": event.initiated_by,
        "admin_role": event.admin_role,
        "subject": _party(event.subject),
        "user": _party(event.user),
        "entity": _party(event.entity),
        "source": {"ip": event.source_ip},
        "resource": event.resource,
        "authenticator": event.authenticator,
        "reason": event.reason,
        "data": event.data,
    }


def encode(event: Event) -> bytes:
    return orjson.dumps(to_document(event))


FORMAT: Final[EventFormat] = EventFormat(
    name="native", content_type="application/json", schema=NATIVE_SCHEMA, encode=encode
)
