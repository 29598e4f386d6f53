"""Output formats: each turns a normalized Event into the bytes one SIEM ingests natively.

The format is chosen per topic at start-up (config), never per request.
"""

from __future__ import annotations

from typing import Final

from bridge.formats import ecs, native, ocsf, splunk_hec
from bridge.formats.base import EventFormat

FORMATS: Final[dict[str, EventFormat]] = {
    fmt.name: fmt for fmt in (native.FORMAT, ecs.FORMAT, ocsf.FORMAT, splunk_hec.FORMAT)
}


def get_format(name: str) -> EventFormat:
    """The format called `name`; config validation has already rejected unknown names."""
    return FORMATS[name]
