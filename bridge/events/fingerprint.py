"""The fingerprint of an event: what a delivered event and its reconstruction from the audit log share.

IDaaS's webhook delivery id and its audit event id are not known to be equal, so the audit backfill cannot
recognize an event the webhook already delivered by id. Both carry the same fields under the same names,
though (docs/operations.md), so an event is identified by: its type, the tenant, its time to the second,
who acted (`subject`) and what it acted on (`entityId`, else the source IP). Every record the bridge
publishes carries it in the `idaas-fingerprint` header, so a backfill reads what is already in Kafka.

What collapses: two events of one type, tenant and actor on the same entity (or from the same IP) within the
same second are one fingerprint, so the backfill takes the second for a duplicate of the first (e.g. two
failed sign-ins of one user from one IP in one second). Deliveries are never dropped for it: only the
backfill consults fingerprints.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Final

from bridge.digits import TWO_DIGITS
from bridge.events.model import Event

FINGERPRINT_HEADER: Final = "idaas-fingerprint"


def utc_second(moment: datetime) -> str:
    """`moment` in UTC to the second, as `strftime("%Y-%m-%dT%H:%M:%SZ")` writes it with glibc (the year
    unpadded), written field by field from a digit table: strftime builds a `struct tm` and cost half of the
    fingerprint, a `%02d` format twice the table's look-ups."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    two = TWO_DIGITS
    return f"{utc.year}-{two[utc.month]}-{two[utc.day]}T{two[utc.hour]}:{two[utc.minute]}:{two[utc.second]}Z"


def fingerprint(event: Event) -> bytes:
    second = utc_second(event.occurred_at)
    target = (event.entity.id if event.entity is not None else None) or event.source_ip or ""
    parts = (event.type, event.account_id, second, event.subject.id or "", target)
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest().encode()
