"""The IDaaS delivery envelope: five required top-level fields, checked before anything else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from bridge.errors import ReasonedError


class EnvelopeError(ReasonedError, ValueError):
    """Not a valid IDaaS envelope; the message names the field and the value."""


class Envelope(NamedTuple):
    """Immutable; a NamedTuple rather than a frozen dataclass, whose __init__ (object.__setattr__ per
    field) costs twice as much, once per delivery (as for `Event`)."""

    id: str
    type: str
    account_id: str
    event_time: datetime
    #: eventTime exactly as IDaaS wrote it (OCSF keeps it in metadata.original_time).
    event_time_text: str
    data: dict[str, Any]


def parse_event_time(value: str) -> datetime:
    """RFC 3339 with or without fractional seconds and with any offset, normalized to UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise EnvelopeError(
            "invalid_event_time", f"eventTime {value!r:.80} is not an RFC 3339 timestamp"
        ) from None
    if parsed.tzinfo is None:
        raise EnvelopeError(
            "invalid_event_time", f"eventTime {value!r:.80} has no UTC offset (expected e.g. 'Z' or '+00:00')"
        )
    return parsed.astimezone(UTC)


def _required_string(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        shown = "missing" if value is None else f"{type(value).__name__} {value!r}"[:80]
        raise EnvelopeError("invalid_field", f"field '{field}' must be a non-empty string, got {shown}")
    return value


def parse_envelope(raw: bytes) -> Envelope:
    """Parse and validate one delivery body; raises EnvelopeError with a precise reason."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError("invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise EnvelopeError("not_an_object", f"body must be a JSON object, got a JSON {type(body).__name__}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise EnvelopeError("invalid_field", "field 'data' must be a JSON object")
    event_time_text = _required_string(body, "eventTime")
    # Positional, in the order of Envelope's fields (keywords go through a dict: 0.3 µs more per delivery).
    return Envelope(
        _required_string(body, "id"),
        _required_string(body, "type"),
        _required_string(body, "accountId"),
        parse_event_time(event_time_text),
        event_time_text,
        data,
    )
