"""Reconstructing webhook-shaped events from IDaaS audit records (`AccountAuditEvent`), for the backfill.

Every field of a webhook's `data` has the same name in the audit record (subject, subjectName, subjectType,
resourceName, sourceIp, token, subscriberAdminRoleName, entityType, entityId, entityName; the envelope's
accountId and eventTime too), so an audit record can be projected onto a delivery. Which audit records
raise which webhook type is not documented: only the mappings the research rates medium-high confidence are
used (the user lifecycle: management events on USERS); every other record is counted as unmapped (see
docs/operations.md for the rest of the tentative table and what a real tenant must confirm).

Differences a reconstruction cannot hide: audit `entityAttributes` are `{name, value}` strings where the
webhook has typed values, so they are kept as strings; and the delivery id is not known, so the
reconstructed id is `audit-<audit id>`. Each reconstructed event is marked in its `data`
(`idaasBridgeBackfill: {source: audit-backfill, auditId}`) and in its record's headers.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from bridge.adminapi.client import parse_time
from bridge.events.fingerprint import utc_second

BACKFILL_SOURCE: Final = "audit-backfill"
SOURCE_HEADER: Final = "idaas-source"
AUDIT_ID_HEADER: Final = "idaas-audit-id"
#: The field of `data` that marks a reconstructed event.
MARK_FIELD: Final = "idaasBridgeBackfill"
#: (eventCategory, entityType, entityAction) -> webhook type, for the mappings trusted enough to publish.
MAPPING: Final[dict[tuple[str, str, str], str]] = {
    ("MANAGEMENT", "USERS", "ADD"): "user.created",
    ("MANAGEMENT", "USERS", "EDIT"): "user.updated",
    ("MANAGEMENT", "USERS", "REMOVE"): "user.deleted",
}
SHARED_FIELDS: Final = (
    "subject",
    "subjectName",
    "subjectType",
    "resourceName",
    "sourceIp",
    "token",
    "subscriberAdminRoleName",
    "entityType",
    "entityId",
    "entityName",
)


def webhook_type(audit: dict[str, Any]) -> str | None:
    key = (audit.get("eventCategory"), audit.get("entityType"), audit.get("entityAction"))
    return MAPPING.get(key)  # type: ignore[arg-type]


def audit_label(audit: dict[str, Any]) -> str:
    """How an unmapped record is reported: its eventType, else category/entityType/entityAction."""
    if audit.get("eventType"):
        return str(audit["eventType"])
    return "/".join(str(audit.get(key, "-")) for key in ("eventCategory", "entityType", "entityAction"))


def reconstruct(audit: dict[str, Any], kind: str) -> bytes:
    """The webhook delivery body IDaaS would have sent for `audit`, as type `kind`, marked as backfilled."""
    data: dict[str, Any] = {key: audit[key] for key in SHARED_FIELDS if audit.get(key) is not None}
    details = audit.get("auditDetails") or {}
    attributes = {
        str(item["name"]): item.get("value")
        for item in details.get("entityAttributes") or []
        if isinstance(item, dict) and "name" in item
    }
    if attributes:
        data["entityAttributes"] = attributes
    data[MARK_FIELD] = {"source": BACKFILL_SOURCE, "auditId": audit["id"]}
    return orjson.dumps(
        {
            "id": f"audit-{audit['id']}",
            "type": kind,
            "accountId": audit.get("accountId", ""),
            "eventTime": utc_second(parse_time(str(audit["eventTime"]))),
            "data": data,
        }
    )
