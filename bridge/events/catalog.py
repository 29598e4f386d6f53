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
class AuthFactor:
    """An OCSF 1.8.0 `auth_factor`: `factor_type_id` from the schema's enum and its caption (the source's own
    name for 99, which OCSF asks for instead of the caption "Other")."""

    type_id: int
    type: str


@dataclass(frozen=True, slots=True)
class Ocsf:
    """OCSF 1.8.0 class and activity. `activity` is the schema's caption, or the source's own name for 99.

    `factor` is the authenticator the event type is about, for the types that name one in their own right;
    a sign-in names its factor per event (`data.token`), so its row has none.
    """

    class_uid: int
    activity_id: int
    activity: str
    factor: AuthFactor | None = None


@dataclass(frozen=True, slots=True)
class Cim:
    """The Splunk CIM data model the event belongs to, the dataset it lands in, and its `action` value.

    The add-on in deploy/splunk tags events by these `action` values, so the value alone decides the model;
    the dataset follows from the model's own constraint on `action` (the schema tests check that it does).
    """

    model: Literal["Authentication", "Change"]
    dataset: str
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

#: OCSF `factor_type_id` values (dictionary.json, `auth_factor`) for the authenticators IDaaS names.
PASSWORD: Final = AuthFactor(11, "Password")
SECURITY_QUESTION: Final = AuthFactor(2, "Security Question")
OTP: Final = AuthFactor(7, "OTP")
PUSH: Final = AuthFactor(5, "Push Notification")
WEBAUTHN: Final = AuthFactor(10, "WebAuthn")
BIOMETRIC: Final = AuthFactor(4, "Biometric")
EMAIL: Final = AuthFactor(8, "Email")
#: OCSF has no grid card factor: 99 Other with the name IDaaS uses for it.
GRID_CARD: Final = AuthFactor(99, "Grid Card")

LOGON: Final = Ocsf(AUTHENTICATION, 1, "Logon")


def account_change(activity_id: int, activity: str, factor: AuthFactor | None = None) -> Ocsf:
    """An Account Change (3001) activity: what every change to an account or its authenticators is."""
    return Ocsf(ACCOUNT_CHANGE, activity_id, activity, factor)


def factor_enabled(factor: AuthFactor) -> Ocsf:
    """MFA Factor Enable: OCSF's own activity for enrolling an authenticator, with the factor enrolled."""
    return account_change(10, "MFA Factor Enable", factor)


SIGNED_IN: Final = Cim("Authentication", "Successful_Authentication", "success")
SIGN_IN_FAILED: Final = Cim("Authentication", "Failed_Authentication", "failure")
CIM_UPDATED: Final = Cim("Change", "Accounts_Updated", "modified")

# fmt: off
# A table: one row per type, its columns aligned, reads better than the formatter's one-value-per-line.
EVENT_TYPES: Final[tuple[EventType, ...]] = (
    EventType("authentication.succeeded", "authentication", "authenticate", "success",
              SIGN_IN, LOGON, SIGNED_IN),
    EventType("authentication.failed", "authentication", "authenticate", "failure",
              SIGN_IN, LOGON, SIGN_IN_FAILED),
    EventType("user.created", "user", "create", "success",
              USER_CREATED, account_change(1, "Create"), Cim("Change", "Accounts_Created", "created")),
    EventType("user.updated", "user", "update", "success",
              USER_CHANGED, account_change(99, "Update"), CIM_UPDATED),
    EventType("user.deleted", "user", "delete", "success",
              USER_DELETED, account_change(6, "Delete"), Cim("Change", "Accounts_Deleted", "deleted")),
    EventType("user.registration.completed", "user", "complete-registration", "success",
              USER_CHANGED, account_change(99, "Registration Complete"), CIM_UPDATED),
    EventType("password.updated", "password", "update", "success",
              AUTHENTICATOR_CHANGED, account_change(3, "Password Change", PASSWORD), CIM_UPDATED),
    EventType("kba.question.created", "kba", "create", "success",
              AUTHENTICATOR_CHANGED, factor_enabled(SECURITY_QUESTION), CIM_UPDATED),
    EventType("grid.created", "grid", "create", "success",
              AUTHENTICATOR_CHANGED, factor_enabled(GRID_CARD), CIM_UPDATED),
    EventType("grid.email.sent", "grid", "send-email", "success",
              AUTHENTICATOR_SENT, account_change(99, "Grid Card Email Sent", GRID_CARD), None),
    EventType("grid.password.email.sent", "grid", "send-password-email", "success",
              AUTHENTICATOR_SENT, account_change(99, "Grid Card Password Email Sent", GRID_CARD), None),
    EventType("passkey.created", "passkey", "create", "success",
              AUTHENTICATOR_CHANGED, factor_enabled(WEBAUTHN), CIM_UPDATED),
    EventType("passkey.updated", "passkey", "update", "success",
              AUTHENTICATOR_CHANGED, account_change(99, "MFA Factor Update", WEBAUTHN), CIM_UPDATED),
    EventType("passkey.deleted", "passkey", "delete", "success",
              AUTHENTICATOR_CHANGED, account_change(11, "MFA Factor Disable", WEBAUTHN), CIM_UPDATED),
    EventType("magiclink.email.sent", "magiclink", "send-email", "success",
              LOGIN_LINK_SENT, Ocsf(AUTHENTICATION, 99, "Magic Link Sent", EMAIL), None),
    EventType("face.biometric.created", "face", "create", "success",
              AUTHENTICATOR_CHANGED, factor_enabled(BIOMETRIC), CIM_UPDATED),
)
# fmt: on

BY_NAME: Final[dict[str, EventType]] = {row.name: row for row in EVENT_TYPES}

#: Metric label for every type not in the catalog, so that label cardinality stays bounded.
UNKNOWN_TYPE_LABEL: Final = "unknown"


def lookup(type_name: str) -> EventType | None:
    """The catalog row for `type_name`, or None for a type IDaaS added after this release."""
    return BY_NAME.get(type_name)
