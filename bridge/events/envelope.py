"""The IDaaS delivery envelope: five required top-level fields, checked before anything else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from bridge.errors import ReasonedError


class EnvelopeError(ReasonedError, ValueError):
    """Not a valid IDaaS envelope; the message names the field and the value."""


@dataclass(init=False)
class Envelope:
    """Immutable: a dataclass with a hand-written __init__ and Final fields, native when compiled (see
    `bridge.events.model`)."""

    id: Final[str]
    type: Final[str]
    account_id: Final[str]
    event_time: Final[datetime]
    #: eventTime exactly as IDaaS wrote it (OCSF keeps it in metadata.original_time).
    event_time_text: Final[str]
    data: Final[dict[str, Any]]

    def __init__(
        self,
        id: str,
        type: str,
        account_id: str,
        event_time: datetime,
        event_time_text: str,
        data: dict[str, Any],
    ) -> None:
        self.id = id
        self.type = type
        self.account_id = account_id
        self.event_time = event_time
        self.event_time_text = event_time_text
        self.data = data


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
    return Envelope(
        id=_required_string(body, "id"),
        type=_required_string(body, "type"),
        account_id=_required_string(body, "accountId"),
        event_time=parse_event_time(event_time_text),
        event_time_text=event_time_text,
        data=data,
    )
