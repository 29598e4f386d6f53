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
class Ecs:
    """ECS 9.4.0 categorization: values from the allowed lists of `event.category` and `event.type`."""

    category: tuple[str, ...]
    type: tuple[str, ...]
    #: False for notifications (`type: info`): ECS says `event.outcome` is generally not populated there.
    has_outcome: bool = True


@dataclass(frozen=True, slots=True)
class Ocsf:
    """OCSF 1.8.0 class and activity. `activity` is the schema's caption, or the source's own name for 99."""

    class_uid: int
    activity_id: int
    activity: str


@dataclass(frozen=True, slots=True)
class Cim:
    """The Splunk CIM data model the event belongs to and its prescribed `action` value.

    The add-on in deploy/splunk tags events by these `action` values, so the value alone decides the model.
    """

    model: Literal["Authentication", "Change"]
    action: str


@dataclass(frozen=True, slots=True)
class EventType:
    """What the bridge knows about one IDaaS event type, including its place in each SIEM schema."""

    name: str
    category: Category
    #: A stable verb for the event (`create`, `authenticate`, `send-email`, …), the same across categories.
    action: str
    outcome: Outcome
    ecs: Ecs
    ocsf: Ocsf
    #: None for events no CIM data model covers (notification emails): they keep only their sourcetype.
    cim: Cim | None

    @property
    def topic(self) -> TopicKey:
        if self.category in AUTHENTICATOR_CATEGORIES:
            return "authenticator"
        if self.category == "authentication":
            return "authentication"
        if self.category == "user":
            return "user"
        return "unknown"


#: OCSF 1.8.0 IAM classes (category 3): sign-ins, and changes to an account or its authenticators.
AUTHENTICATION: Final = 3002
ACCOUNT_CHANGE: Final = 3001

SIGN_IN: Final = Ecs(("authentication",), ("start",))
USER_CREATED: Final = Ecs(("iam",), ("user", "creation"))
USER_CHANGED: Final = Ecs(("iam",), ("user", "change"))
USER_DELETED: Final = Ecs(("iam",), ("user", "deletion"))
#: Changes to an authenticator stay `change`: a user-deletion rule must not fire when a passkey is removed.
AUTHENTICATOR_CHANGED: Final = USER_CHANGED
AUTHENTICATOR_SENT: Final = Ecs(("iam",), ("user", "info"), has_outcome=False)
LOGIN_LINK_SENT: Final = Ecs(("authentication",), ("info",), has_outcome=False)

FACTOR_ENABLED: Final = Ocsf(ACCOUNT_CHANGE, 10, "MFA Factor Enable")
CIM_MODIFIED: Final = Cim("Change", "modified")

# fmt: off
# A table: one row per type, its columns aligned, reads better than the formatter's one-value-per-line.
EVENT_TYPES: Final[tuple[EventType, ...]] = (
    EventType("authentication.succeeded", "authentication", "authenticate", "success",
              SIGN_IN, Ocsf(AUTHENTICATION, 1, "Logon"), Cim("Authentication", "success")),
    EventType("authentication.failed", "authentication", "authenticate", "failure",
              SIGN_IN, Ocsf(AUTHENTICATION, 1, "Logon"), Cim("Authentication", "failure")),
    EventType("user.created", "user", "create", "success",
              USER_CREATED, Ocsf(ACCOUNT_CHANGE, 1, "Create"), Cim("Change", "created")),
    EventType("user.updated", "user", "update", "success",
              USER_CHANGED, Ocsf(ACCOUNT_CHANGE, 99, "Update"), CIM_MODIFIED),
    EventType("user.deleted", "user", "delete", "success",
              USER_DELETED, Ocsf(ACCOUNT_CHANGE, 6, "Delete"), Cim("Change", "deleted")),
    EventType("user.registration.completed", "user", "complete-registration", "success",
              USER_CHANGED, Ocsf(ACCOUNT_CHANGE, 99, "Registration Complete"), CIM_MODIFIED),
    EventType("password.updated", "password", "update", "success",
              AUTHENTICATOR_CHANGED, Ocsf(ACCOUNT_CHANGE, 3, "Password Change"), CIM_MODIFIED),
    EventType("kba.question.created", "kba", "create", "success",
              AUTHENTICATOR_CHANGED, FACTOR_ENABLED, CIM_MODIFIED),
    EventType("grid.created", "grid", "create", "success",
              AUTHENTICATOR_CHANGED, FACTOR_ENABLED, CIM_MODIFIED),
    EventType("grid.email.sent", "grid", "send-email", "success",
              AUTHENTICATOR_SENT, Ocsf(ACCOUNT_CHANGE, 99, "Grid Card Email Sent"), None),
    EventType("grid.password.email.sent", "grid", "send-password-email", "success",
              AUTHENTICATOR_SENT, Ocsf(ACCOUNT_CHANGE, 99, "Grid Card Password Email Sent"), None),
    EventType("passkey.created", "passkey", "create", "success",
              AUTHENTICATOR_CHANGED, FACTOR_ENABLED, CIM_MODIFIED),
    EventType("passkey.updated", "passkey", "update", "success",
              AUTHENTICATOR_CHANGED, Ocsf(ACCOUNT_CHANGE, 99, "MFA Factor Update"), CIM_MODIFIED),
    EventType("passkey.deleted", "passkey", "delete", "success",
              AUTHENTICATOR_CHANGED, Ocsf(ACCOUNT_CHANGE, 11, "MFA Factor Disable"), CIM_MODIFIED),
    EventType("magiclink.email.sent", "magiclink", "send-email", "success",
              LOGIN_LINK_SENT, Ocsf(AUTHENTICATION, 99, "Magic Link Sent"), None),
    EventType("face.biometric.created", "face", "create", "success",
              AUTHENTICATOR_CHANGED, FACTOR_ENABLED, CIM_MODIFIED),
)
# fmt: on

BY_NAME: Final[dict[str, EventType]] = {row.name: row for row in EVENT_TYPES}

#: Metric label for every type not in the catalog, so that label cardinality stays bounded.
UNKNOWN_TYPE_LABEL: Final = "unknown"


def lookup(type_name: str) -> EventType | None:
    """The catalog row for `type_name`, or None for a type IDaaS added after this release."""
    return BY_NAME.get(type_name)
