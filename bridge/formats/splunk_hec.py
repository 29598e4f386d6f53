"""Splunk HTTP Event Collector envelopes, ready for Splunk Connect for Kafka to forward as they are.

With `splunk.hec.json.event.formatted=true` the connector reads each record into its HEC event class with a
plain Jackson mapper: an unknown key or a non-string `fields` value fails that parse, and the connector then
wraps the whole record as the `event` of a new envelope with the wrong time and sourcetype. So the envelope
holds exactly `time` (the event time, numeric epoch seconds to the millisecond), `host` (the IDaaS tenant),
`source` (the receiving webhook), `sourcetype` (`entrust:idaas:<category>`), `event` and `fields` (indexed,
string values only); `index` is left to the HEC token. The same host, source and sourcetype also travel as
Kafka headers for the connector's header-routing mode (`splunk.header.support=true`).

`event` uses CIM field names. The CIM `action` of the event's classification (bridge/events/catalog.py) puts
it in a data model (the add-on in deploy/splunk tags by it); required CIM fields IDaaS does not supply are
"unknown", as the CIM asks. The IDaaS `data` object rides along under `data`, untouched.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from bridge.events.authenticators import describe
from bridge.events.model import Event
from bridge.formats._fields import PRODUCT, VENDOR, epoch_millis
from bridge.formats.base import EventFormat, Header

APP: Final = "entrust:idaas"
VENDOR_PRODUCT: Final = f"{VENDOR} {PRODUCT}"
SOURCETYPE_PREFIX: Final = "entrust:idaas:"
SOURCE_PREFIX: Final = "idaas-webhook:"
UNKNOWN: Final = "unknown"


def _source(event: Event) -> str:
    return SOURCE_PREFIX + event.webhook


def _sourcetype(event: Event) -> str:
    return SOURCETYPE_PREFIX + event.category


def _cim_event(event: Event) -> dict[str, Any]:
    user = event.user.name or event.user.id or UNKNOWN
    cim: dict[str, Any] = {
        "signature": event.type,
        "id": event.id,
        "app": APP,
        "vendor_product": VENDOR_PRODUCT,
        "vendor_account": event.account_id,
        "user": user,
        "src": event.source_ip or UNKNOWN,
        "dest": event.resource or UNKNOWN,
    }
    if event.user.id is not None:
        cim["user_id"] = event.user.id
    if event.category != "authentication" and (actor := event.subject.name or event.subject.id):
        cim["src_user"] = actor
    if event.reason is not None:
        cim["reason"] = event.reason
    model = event.classification.cim if event.classification is not None else None
    if model is not None:
        cim["action"] = model.action
        if model.model == "Authentication":
            cim["authentication_service"] = VENDOR_PRODUCT
            if event.authenticator is not None:
                cim["authentication_method"] = describe(event.authenticator).method
        else:
            cim["status"] = event.outcome
            cim["change_type"] = "AAA"
            cim["object"] = user
            cim["object_category"] = "user"
            cim["command"] = event.type
            cim["dvc"] = event.account_id
            if event.user.id is not None:
                cim["object_id"] = event.user.id
            if event.authenticator is not None:
                cim["object_attrs"] = [event.authenticator]
    cim["data"] = event.data
    return cim


def to_envelope(event: Event) -> dict[str, Any]:
    return {
        "time": epoch_millis(event.occurred_at) / 1000,
        "host": event.account_id,
        "source": _source(event),
        "sourcetype": _sourcetype(event),
        "event": _cim_event(event),
        "fields": {"idaas_event_type": event.type, "idaas_webhook": event.webhook},
    }


def encode(event: Event) -> bytes:
    return orjson.dumps(to_envelope(event))


def routing_headers(event: Event) -> list[Header]:
    """The connector's default header names (`splunk.header.host` …), same values as the envelope."""
    return [
        ("splunk.header.host", event.account_id.encode()),
        ("splunk.header.source", _source(event).encode()),
        ("splunk.header.sourcetype", _sourcetype(event).encode()),
    ]


FORMAT: Final[EventFormat] = EventFormat(
    name="splunk_hec",
    content_type="application/json",
    schema="splunk-hec-event/1",
    encode=encode,
    extra_headers=routing_headers,
)
