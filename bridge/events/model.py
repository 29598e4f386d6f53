"""The normalized event: one record shape for every IDaaS type, the input of every output format."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, NamedTuple

from bridge.events.catalog import Category, Classification, EventType, Outcome, TopicKey

NATIVE_SCHEMA: Final = "idaas.event/1"


# Party and Event are NamedTuples, not frozen dataclasses: both are immutable, but a frozen dataclass's
# __init__ sets each field through object.__setattr__, 3.1 µs for Event's 22 fields against 1.3 µs for a
# NamedTuple, made for every delivery. Nothing treats them as sequences.


class Party(NamedTuple):
    """A user or object named in an event: IDaaS gives an id, a display name and a type code."""

    id: str | None
    name: str | None
    type: str | None


class Event(NamedTuple):
    """One IDaaS event after normalization.

    `subject` is who acted as IDaaS sent it; `user` is the account the event is about (the same person for
    self-service events, the target for admin-originated ones); `entity` is the object that changed.
    """

    id: str
    type: str
    catalog_row: EventType | None
    #: The row's classification, or the variant `data` selected; None for a type without a row.
    classification: Classification | None
    category: Category
    action: str
    outcome: Outcome
    account_id: str
    occurred_at: datetime
    occurred_at_text: str  # eventTime as IDaaS wrote it
    received_at: datetime
    webhook: str
    subject: Party
    user: Party
    entity: Party | None
    initiated_by: str  # "admin" | "user"
    admin_role: str | None
    source_ip: str | None
    resource: str | None
    authenticator: str | None
    reason: str | None
    data: dict[str, Any]

    @property
    def topic(self) -> TopicKey:
        return self.catalog_row.topic if self.catalog_row is not None else "unknown"

    @property
    def key(self) -> str:
        """Kafka key: the affected user's username wherever a field names them, else their id, else the
        tenant. The username first because it is the one identifier every event about a user carries
        (`subjectName` when they act themselves; `entityAttributes.userId` or a user `entityName` when an
        admin acts on them, often without their id), so all of one user's events share a partition."""
        return self.user.name or self.user.id or self.account_id
