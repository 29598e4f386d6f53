"""The normalized event: one record shape for every IDaaS type, the input of every output format."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bridge.events.catalog import Category, Classification, EventType, Outcome, TopicKey

NATIVE_SCHEMA: Final = "idaas.event/1"


# Party and Event are dataclasses with a hand-written __init__ and Final fields: compiled by mypyc, that
# __init__ is native (0.06 µs where a NamedTuple's __new__, Python code, took 0.6) and a field cannot be
# assigned; the dataclass gives equality, repr and dataclasses.replace (docs/architecture.md, "The request
# path's modules are compiled").


@dataclass(init=False)
class Party:
    """A user or object named in an event: IDaaS gives an id, a display name and a type code."""

    id: Final[str | None]
    name: Final[str | None]
    type: Final[str | None]

    def __init__(self, id: str | None, name: str | None, type: str | None) -> None:
        self.id = id
        self.name = name
        self.type = type


@dataclass(init=False)
class Event:
    """One IDaaS event after normalization.

    `subject` is who acted as IDaaS sent it; `user` is the account the event is about (the same person for
    self-service events, the target for admin-originated ones); `entity` is the object that changed.
    """

    id: Final[str]
    type: Final[str]
    catalog_row: Final[EventType | None]
    #: The row's classification, or the variant `data` selected; None for a type without a row.
    classification: Final[Classification | None]
    category: Final[Category]
    action: Final[str]
    outcome: Final[Outcome]
    account_id: Final[str]
    occurred_at: Final[datetime]
    occurred_at_text: Final[str]  # eventTime as IDaaS wrote it
    received_at: Final[datetime]
    webhook: Final[str]
    subject: Final[Party]
    user: Final[Party]
    entity: Final[Party | None]
    initiated_by: Final[str]  # "admin" | "user"
    admin_role: Final[str | None]
    source_ip: Final[str | None]
    resource: Final[str | None]
    authenticator: Final[str | None]
    reason: Final[str | None]
    data: Final[dict[str, Any]]

    def __init__(
        self,
        id: str,
        type: str,
        catalog_row: EventType | None,
        classification: Classification | None,
        category: Category,
        action: str,
        outcome: Outcome,
        account_id: str,
        occurred_at: datetime,
        occurred_at_text: str,
        received_at: datetime,
        webhook: str,
        subject: Party,
        user: Party,
        entity: Party | None,
        initiated_by: str,
        admin_role: str | None,
        source_ip: str | None,
        resource: str | None,
        authenticator: str | None,
        reason: str | None,
        data: dict[str, Any],
    ) -> None:
        self.id = id
        self.type = type
        self.catalog_row = catalog_row
        self.classification = classification
        self.category = category
        self.action = action
        self.outcome = outcome
        self.account_id = account_id
        self.occurred_at = occurred_at
        self.occurred_at_text = occurred_at_text
        self.received_at = received_at
        self.webhook = webhook
        self.subject = subject
        self.user = user
        self.entity = entity
        self.initiated_by = initiated_by
        self.admin_role = admin_role
        self.source_ip = source_ip
        self.resource = resource
        self.authenticator = authenticator
        self.reason = reason
        self.data = data

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
