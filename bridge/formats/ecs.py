"""Elastic Common Schema 9.4.0 documents, nested as Elasticsearch stores them.

`@timestamp` is when IDaaS says the event happened and `event.created` when the bridge received it;
`event.ingested` is left to Elasticsearch (Fleet's final pipeline sets it). Categorization comes from the
catalog row. Who acted is `user.*` (the IDaaS subject) and, for everything but a sign-in, the account the
event is about is `user.target.*`, as the ECS user-usage guide puts it. What ECS has no field for lives under
one vendor namespace, `entrust_idaas.*`. Every document keeps the IDaaS `data` object whole, as JSON text, in
`event.original` (ECS's field for the event as received; Elasticsearch stores it without indexing it), so a
field nothing else maps is not lost. A type without a catalog row is `event.kind: event` with no category
(ECS: leave it empty when nothing fits).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from bridge.events.authenticators import describe
from bridge.events.model import Event, Party
from bridge.formats._fields import PRODUCT, VENDOR, ip_or_none
from bridge.formats.base import EventFormat, rfc3339

ECS_VERSION: Final = "9.4.0"
MODULE: Final = "entrust_idaas"
DATASET: Final = "entrust_idaas.webhook"


def _id_and_name(party: Party) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if party.id is not None:
        fields["id"] = party.id
    if party.name is not None:
        fields["name"] = party.name
    return fields


def _vendor_fields(event: Event) -> dict[str, Any]:
    """The `entrust_idaas.*` namespace: IDaaS facts without an ECS field."""
    vendor: dict[str, Any] = {"webhook": event.webhook, "initiated_by": event.initiated_by}
    if event.resource is not None:
        vendor["resource_name"] = event.resource
    if event.authenticator is not None:
        vendor["authenticator"] = event.authenticator
        if event.category == "authentication":
            vendor["authentication_method"] = describe(event.authenticator).method
    entity: dict[str, Any] = {}
    if event.entity is not None:
        entity = _id_and_name(event.entity)
        if event.entity.type is not None:
            entity["type"] = event.entity.type
    # Sign-ins have attributes (`registrationRequired`) but no entity: they still belong here.
    attributes = event.data.get("entityAttributes")
    if isinstance(attributes, dict) and attributes:
        entity["attributes"] = attributes
    if entity:
        vendor["entity"] = entity
    return vendor


def to_document(event: Event) -> dict[str, Any]:
    classification = event.classification
    ecs_event: dict[str, Any] = {
        "kind": "event",
        "action": event.type,
        "id": event.id,
        "created": rfc3339(event.received_at),
        "module": MODULE,
        "dataset": DATASET,
        "original": orjson.dumps(event.data).decode(),
    }
    if classification is not None:
        # The catalog's tuples as they are: orjson writes a tuple as an array.
        ecs_event["category"] = classification.ecs.category
        ecs_event["type"] = classification.ecs.type
        if classification.ecs.has_outcome:
            ecs_event["outcome"] = event.outcome
    if event.reason is not None:
        ecs_event["reason"] = event.reason
    document: dict[str, Any] = {
        "@timestamp": rfc3339(event.occurred_at),
        "ecs": {"version": ECS_VERSION},
        "event": ecs_event,
        "organization": {"id": event.account_id},
        "observer": {"vendor": VENDOR, "product": PRODUCT},
    }
    user = _id_and_name(event.subject)
    if event.admin_role is not None:
        user["roles"] = [event.admin_role]
    if event.category != "authentication" and (target := _id_and_name(event.user)):
        user["target"] = target
    if user:
        document["user"] = user
    related: dict[str, list[str]] = {}
    names = (event.subject.name, event.subject.id, event.user.name, event.user.id)
    if related_users := list(dict.fromkeys(name for name in names if name is not None)):
        related["user"] = related_users
    if event.source_ip is not None:
        if (ip := ip_or_none(event.source_ip)) is not None:
            document["source"] = {"ip": ip}
            related["ip"] = [ip]
        else:
            document["source"] = {"address": event.source_ip}
    if related:
        document["related"] = related
    document[MODULE] = _vendor_fields(event)
    return document


def encode(event: Event) -> bytes:
    return orjson.dumps(to_document(event))


FORMAT: Final[EventFormat] = EventFormat(
    name="ecs", content_type="application/json", schema=f"ecs/{ECS_VERSION}", encode=encode
)
