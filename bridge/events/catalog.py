"""The one table of IDaaS webhook event types.

Nothing else in the project lists event types: routing, normalization and every output format read their
per-type facts from a row here, so supporting a new IDaaS event type is one row plus its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Category = Literal[
    "authentication", "user", "password", "kba", "grid", "passkey", "magiclink", "face", "unknown"
]
Outcome = Literal["success", "failure", "unknown"]
#: The logical topics; config maps each one to a Kafka topic name and an output format.
TopicKey = Literal["authentication", "user", "authenticator", "unknown", "deadletter"]

#: Categories whose events describe a user's authenticators rather than the account itself.
AUTHENTICATOR_CATEGORIES: Final = frozenset({"password", "kba", "grid", "passkey", "magiclink", "face"})


@dataclass(frozen=True, slots=True)
class EventType:
    """What the bridge knows about one IDaaS event type."""

    name: str
    category: Category
    #: A stable verb for the event (`create`, `authenticate`, `send-email`, …), the same across categories.
    action: str
    outcome: Outcome

    @property
    def topic(self) -> TopicKey:
        if self.category in AUTHENTICATOR_CATEGORIES:
            return "authenticator"
        if self.category == "authentication":
            return "authentication"
        if self.category == "user":
            return "user"
        return "unknown"


EVENT_TYPES: Final[tuple[EventType, ...]] = (
    EventType("authentication.succeeded", "authentication", "authenticate", "success"),
    EventType("authentication.failed", "authentication", "authenticate", "failure"),
    EventType("user.created", "user", "create", "success"),
    EventType("user.updated", "user", "update", "success"),
    EventType("user.deleted", "user", "delete", "success"),
    EventType("user.registration.completed", "user", "complete-registration", "success"),
    EventType("password.updated", "password", "update", "success"),
    EventType("kba.question.created", "kba", "create", "success"),
    EventType("grid.created", "grid", "create", "success"),
    EventType("grid.email.sent", "grid", "send-email", "success"),
    EventType("grid.password.email.sent", "grid", "send-password-email", "success"),
    EventType("passkey.created", "passkey", "create", "success"),
    EventType("passkey.updated", "passkey", "update", "success"),
    EventType("passkey.deleted", "passkey", "delete", "success"),
    EventType("magiclink.email.sent", "magiclink", "send-email", "success"),
    EventType("face.biometric.created", "face", "create", "success"),
)

BY_NAME: Final[dict[str, EventType]] = {row.name: row for row in EVENT_TYPES}

#: Metric label for every type not in the catalog, so that label cardinality stays bounded.
UNKNOWN_TYPE_LABEL: Final = "unknown"


def lookup(type_name: str) -> EventType | None:
    """The catalog row for `type_name`, or None for a type IDaaS added after this release."""
    return BY_NAME.get(type_name)
