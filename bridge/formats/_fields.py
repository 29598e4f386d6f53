"""Values and conversions every SIEM format shares, so the three mappings cannot drift apart on them."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Final

VENDOR: Final = "Entrust"
PRODUCT: Final = "Identity as a Service"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)


def epoch_millis(moment: datetime) -> int:
    """Whole milliseconds since the epoch, exact (float `timestamp() * 1000` can land one below)."""
    return (moment - _EPOCH) // _MILLISECOND


def ip_or_none(text: str | None) -> str | None:
    """`text` if it is an IPv4/IPv6 address, else None.

    SIEMs type the source address as an IP: Elasticsearch rejects the whole document over one bad value and
    OCSF's `ip_t` has a pattern, so anything else IDaaS might send stays in the vendor/unmapped fields.
    """
    if text is None:
        return None
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text
