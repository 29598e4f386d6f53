"""The one table of IDaaS webhook event types.

Nothing else in the project lists event types: routing, normalization and every output format read their
per-type facts from a row here, so supporting a new IDaaS event type is one row plus its tests.

A row files its type in each SIEM schema (`classification`); where the vendor's own examples show that one
type covers different things, the row also lists the `variants`, and normalization picks one from `data`
(bridge/events/normalize.py knows which field says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from bridge.events.authenticators import (
    BIOMETRIC,
    EMAIL,
    GRID_CARD,
    PASSWORD,
    SECURITY_QUESTION,
    WEBAUTHN,
    AuthFactor,
)

Category = Literal[
    "authentication", "user", "password", "kba", "grid", "passkey", "magiclink", "face", "unknown"
]
Outcome = Literal["success", "failure", "unknown"]
#: What `data` can show an event to be, beyond its type (normalize.variant_of decides).
Variant = Literal["registration-link", "sign-in-link", "factor-pending", "password-reset"]
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
class Classification:
    """Where one event is filed: its outcome and its place in ECS, OCSF and the CIM."""

    outcome: Outcome
    ecs: Ecs
    ocsf: Ocsf
    #: None for events no CIM data model covers (notification emails): they keep only their sourcetype.
    cim: Cim | None


@dataclass(frozen=True, slots=True)
class EventType:
    """What the bridge knows about one IDaaS event type, including its place in each SIEM schema."""

    name: str
    category: Category
    #: A stable verb for the event (`create`, `authenticate`, `send-email`, …), the same across categories.
    action: str
    #: How an event of this type is filed unless `data` shows it is one of the `variants`.
    classification: Classification
    variants: dict[Variant, Classification] = field(default_factory=dict)

    def classify(self, variant: Variant | None) -> Classification:
        return self.variants.get(variant, self.classification) if variant else self.classification

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

LOGON: Final = Ocsf(AUTHENTICATION, 1, "Logon")


def account_change(activity_id: int, activity: str, factor: AuthFactor | None = None) -> Ocsf:
    """An Account Change (3001) activity: what every change to an account or its authenticators is."""
    return Ocsf(ACCOUNT_CHANGE, activity_id, activity, factor)


def factor_enabled(factor: AuthFactor) -> Ocsf:
    """MFA Factor Enable: OCSF's own activity for enrolling an authenticator, with the factor enrolled."""
    return account_change(10, "MFA Factor Enable", factor)


def factor_pending(factor: AuthFactor) -> Ocsf:
    """An authenticator issued but not active yet (a grid card PENDING, a face ACTIVATING): not yet MFA
    Factor Enable, so 99 with a name of ours, the factor named."""
    return account_change(99, "MFA Factor Pending", factor)


SIGNED_IN: Final = Cim("Authentication", "Successful_Authentication", "success")
SIGN_IN_FAILED: Final = Cim("Authentication", "Failed_Authentication", "failure")
CIM_UPDATED: Final = Cim("Change", "Accounts_Updated", "modified")


def authenticator_changed(ocsf: Ocsf) -> Classification:
    """A change to an authenticator: ECS `[user, change]`, CIM an updated account, OCSF as given."""
    return Classification("success", AUTHENTICATOR_CHANGED, ocsf, CIM_UPDATED)


def notification(ecs: Ecs, ocsf: Ocsf, outcome: Outcome = "success") -> Classification:
    """An email IDaaS sent: no CIM data model takes it (its `action` would have to be a result)."""
    return Classification(outcome, ecs, ocsf, None)


#: A magic link is a one-time sign-in URL sent by email. Sending one for a sign-in is a step of an
#: authentication; sending one to finish a registration is account/credential lifecycle. When `data` does
#: not say which (no or an unknown `magicLinkType`), the send is filed as a sign-in step with no outcome
#: claimed: OCSF status Unknown.
MAGIC_LINK_SENT: Final = Ocsf(AUTHENTICATION, 99, "Magic Link Sent", EMAIL)

# fmt: off
# A table: one row per type, its columns aligned, reads better than the formatter's one-value-per-line.
EVENT_TYPES: Final[tuple[EventType, ...]] = (
    EventType("authentication.succeeded", "authentication", "authenticate",
              Classification("success", SIGN_IN, LOGON, SIGNED_IN)),
    EventType("authentication.failed", "authentication", "authenticate",
              Classification("failure", SIGN_IN, LOGON, SIGN_IN_FAILED)),
    EventType("user.created", "user", "create",
              Classification("success", USER_CREATED, account_change(1, "Create"),
                             Cim("Change", "Accounts_Created", "created"))),
    EventType("user.updated", "user", "update",
              Classification("success", USER_CHANGED, account_change(99, "Update"), CIM_UPDATED)),
    EventType("user.deleted", "user", "delete",
              Classification("success", USER_DELETED, account_change(6, "Delete"),
                             Cim("Change", "Accounts_Deleted", "deleted"))),
    EventType("user.registration.completed", "user", "complete-registration",
              Classification("success", USER_CHANGED, account_change(99, "Registration Complete"),
                             CIM_UPDATED)),
    EventType("password.updated", "password", "update",
              authenticator_changed(account_change(3, "Password Change", PASSWORD)),
              {"password-reset": authenticator_changed(account_change(4, "Password Reset", PASSWORD))}),
    EventType("kba.question.created", "kba", "create",
              authenticator_changed(factor_enabled(SECURITY_QUESTION))),
    EventType("grid.created", "grid", "create",
              authenticator_changed(factor_enabled(GRID_CARD)),
              {"factor-pending": authenticator_changed(factor_pending(GRID_CARD))}),
    EventType("grid.email.sent", "grid", "send-email",
              notification(AUTHENTICATOR_SENT, account_change(99, "Grid Card Email Sent", GRID_CARD))),
    EventType("grid.password.email.sent", "grid", "send-password-email",
              notification(AUTHENTICATOR_SENT,
                           account_change(99, "Grid Card Password Email Sent", GRID_CARD))),
    EventType("passkey.created", "passkey", "create",
              authenticator_changed(factor_enabled(WEBAUTHN))),
    EventType("passkey.updated", "passkey", "update",
              authenticator_changed(account_change(99, "MFA Factor Update", WEBAUTHN))),
    EventType("passkey.deleted", "passkey", "delete",
              authenticator_changed(account_change(11, "MFA Factor Disable", WEBAUTHN))),
    EventType("magiclink.email.sent", "magiclink", "send-email",
              notification(LOGIN_LINK_SENT, MAGIC_LINK_SENT, outcome="unknown"),
              {"sign-in-link": notification(LOGIN_LINK_SENT, MAGIC_LINK_SENT),
               "registration-link": notification(
                   AUTHENTICATOR_SENT, account_change(99, "Registration Magic Link Sent", EMAIL))}),
    EventType("face.biometric.created", "face", "create",
              authenticator_changed(factor_enabled(BIOMETRIC)),
              {"factor-pending": authenticator_changed(factor_pending(BIOMETRIC))}),
)
# fmt: on

BY_NAME: Final[dict[str, EventType]] = {row.name: row for row in EVENT_TYPES}

NO_EXAMPLE: Final = (
    "Entrust publishes no example payload for it (each of the 16 rows above rests on one), so which field "
    "names the affected user and which authenticator it is about would be guessed"
)
#: The webhook types of the Admin API spec (v5.46, `WebhookEvent.type`) without a row, and why. Their events
#: are published to the unknown topic exactly as they arrived (nothing is lost), and the webhook watcher's
#: IdaasBridgeWebhookUnknownEventTypes names them when a webhook subscribes to them. A row is added once a
#: real payload of the type has been seen.
UNMAPPED_SPEC_TYPES: Final[dict[str, str]] = {
    "token.created": f"{NO_EXAMPLE}; a token is created unassigned or for a user, soft or hard (OTP or push)",
    "token.activated": f"{NO_EXAMPLE}; OCSF would be MFA Factor Enable with a factor the payload must name",
    "token.activated.online": f"{NO_EXAMPLE}; the online activation of a mobile soft token (token.activated)",
    "token.seed.rotated": f"{NO_EXAMPLE}; no OCSF Account Change activity fits a seed rotation but 99 Other",
    "hardware.token.assigned": f"{NO_EXAMPLE}; an assignment by an admin, whose subject is the admin",
    "credential.create": (
        f"{NO_EXAMPLE}; a smart credential (the spec's Smart Credentials: a certificate-based credential, "
        "also a printed card) is issuance, the audit log's ISSUANCE category, not a sign-in factor change"
    ),
    "credential.update": f"{NO_EXAMPLE}; smart credential issuance (see credential.create)",
    "credential.delete": f"{NO_EXAMPLE}; smart credential issuance (see credential.create)",
    "credential.print": f"{NO_EXAMPLE}; printing a credential card has no IAM class in ECS, OCSF or the CIM",
}

#: Every webhook event type of the Admin API spec: what a webhook created with no event list receives ("all
#: available events").
SPEC_WEBHOOK_TYPES: Final = (*BY_NAME, *UNMAPPED_SPEC_TYPES)

#: Metric label for every type not in the catalog, so that label cardinality stays bounded.
UNKNOWN_TYPE_LABEL: Final = "unknown"


def lookup(type_name: str) -> EventType | None:
    """The catalog row for `type_name`, or None for a type IDaaS added after this release."""
    return BY_NAME.get(type_name)
