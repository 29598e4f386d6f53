"""Envelope → Event: the one place that knows how IDaaS lays out `data`.

Every `data` field is optional (the public docs show only part of most payloads), so each lookup tolerates a
missing or mistyped value; the original `data` object travels untouched in the event.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final, NamedTuple

import orjson

from bridge.events.catalog import AUTHENTICATOR_CATEGORIES, Category, Variant, lookup
from bridge.events.envelope import Envelope
from bridge.events.model import Event, Party

ADMIN_PORTAL: Final = "Administration Portal"
#: entityType codes whose entityId is the affected user's own id.
USER_ENTITY_TYPES: Final = frozenset({"USERS", "USERPASSWORDS"})
#: entityType codes whose entityName is the affected user's username.
USERNAME_ENTITY_TYPES: Final = frozenset({"USERS", "USERPASSWORDS", "MAGICLINKS"})
#: Keys that may carry why an authentication failed: no vendor example shows one, so these are guesses,
#: looked for under entityAttributes first, then in `data` itself.
REASON_KEYS: Final = ("reason", "failureReason", "errorMessage")
#: Any other key that reads like an explanation of a result is carried into the reason as `key: value`, so a
#: field IDaaS names differently still reaches every format's reason field (and `data` travels whole anyway).
REASON_LIKE: Final = re.compile(r"reason|error|fail|cause|denied|detail|message", re.IGNORECASE)
#: `magicLinkType` values, compared on their letters alone, without case ("Sign-In" is "signin").
#: "Registration" is the one a vendor example shows; the sign-in names are inferred. Any other value selects
#: no variant.
REGISTRATION_LINK_TYPES: Final = frozenset({"registration"})
SIGN_IN_LINK_TYPES: Final = frozenset({"authentication", "signin", "login", "logon", "passwordless"})
#: An authenticator issued but not usable yet: grid `state` PENDING and face `status` ACTIVATING, both from
#: the vendor's examples.
PENDING_STATES: Final = frozenset({"PENDING", "ACTIVATING"})
#: The entityAttributes key holding each authenticator category's state.
STATE_KEYS: Final[dict[Category, str]] = {"grid": "state", "face": "status"}
_NOT_LETTERS: Final = re.compile(r"[^a-z]")


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
    return Party(user_id, name, "USER" if user_id or name else None)  # id, name, type


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


#: The reason keys of one object's key set are remembered for key sets of up to this many characters, the
#: first this many of them: IDaaS sends a few dozen key sets (one or two per event type), and the memory
#: stays small whatever is sent.
CACHED_KEY_SET_CHARS: Final = 1024
CACHED_KEY_SETS: Final = 512


class _ReasonKeys(NamedTuple):
    """Where one object's reason may be, in the object's key order."""

    #: The guessed keys it has, in REASON_KEYS' order.
    guessed: tuple[str, ...]
    #: Its other reason-like keys.
    other: tuple[str, ...]


#: Key set → its reason keys. The same few key sets come in every event, and the regex search over each key
#: was the costly part of `_reason`: one look-up per object instead of one per key.
_reason_keys_of: dict[tuple[str, ...], _ReasonKeys] = {}


def _find_reason_keys(keys: tuple[str, ...]) -> _ReasonKeys:
    """The reason keys among `keys`; called when the key set is not remembered."""
    found = _ReasonKeys(
        tuple(key for key in REASON_KEYS if key in keys),
        tuple(key for key in keys if key not in REASON_KEYS and REASON_LIKE.search(key)),
    )
    if len(_reason_keys_of) < CACHED_KEY_SETS and sum(map(len, keys)) <= CACHED_KEY_SET_CHARS:
        _reason_keys_of[keys] = found
    return found


def _reason(data: dict[str, Any], attributes: dict[str, Any]) -> str | None:
    """The guessed reason keys' texts, then every other reason-like field as `key: value`, joined."""
    sources = []
    for source in (attributes, data):
        keys = tuple(source)
        found = _reason_keys_of.get(keys)
        if found is None:
            found = _find_reason_keys(keys)
        if found.guessed or found.other:
            sources.append((source, found))
    if not sources:
        return None
    parts = [text for source, found in sources for key in found.guessed if (text := _text(source, key))]
    for source, found in sources:
        for key in found.other:
            value = source[key]
            if value not in (None, "", [], {}):
                parts.append(f"{key}: {_as_text(value)}")
    return "; ".join(parts) or None


def variant_of(
    category: Category, data: dict[str, Any], attributes: dict[str, Any], by_admin: bool
) -> Variant | None:
    """What `data` shows the event to be beyond its type; the catalog row says how each variant is filed."""
    if category == "magiclink":
        link_type = _text(attributes, "magicLinkType")
        folded = _NOT_LETTERS.sub("", link_type.lower()) if link_type else None
        if folded in REGISTRATION_LINK_TYPES:
            return "registration-link"
        return "sign-in-link" if folded in SIGN_IN_LINK_TYPES else None
    if category in STATE_KEYS:
        state = _text(attributes, STATE_KEYS[category])
        return "factor-pending" if state is not None and state.upper() in PENDING_STATES else None
    if category == "password" and by_admin:
        # An admin setting someone's password resets it; an admin changing their own is still a change.
        target = _text(data, "entityId")
        return None if target is not None and target == _text(data, "subject") else "password-reset"
    return None


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
    classification = None
    if row is not None:
        classification = row.classify(variant_of(category, data, attributes, by_admin))
    action = row.action if row is not None else envelope.type
    outcome = classification.outcome if classification is not None else "unknown"
    initiated_by = "admin" if by_admin else "user"
    return Event(
        id=envelope.id,
        type=envelope.type,
        catalog_row=row,
        classification=classification,
        category=category,
        action=action,
        outcome=outcome,
        account_id=envelope.account_id,
        occurred_at=envelope.event_time,
        occurred_at_text=envelope.event_time_text,
        received_at=received_at,
        webhook=webhook,
        subject=subject,
        user=_affected_user(data, subject, by_admin),
        entity=entity,
        initiated_by=initiated_by,
        admin_role=admin_role,
        source_ip=_text(data, "sourceIp"),
        resource=resource,
        authenticator=authenticator,
        reason=_reason(data, attributes),
        data=data,
    )
