"""Values and conversions every SIEM format shares, so the three mappings cannot drift apart on them."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta
from typing import Final

VENDOR: Final = "Entrust"
PRODUCT: Final = "Identity as a Service"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)


def epoch_millis(moment: datetime) -> int:
    """Whole milliseconds since the epoch, exact (float `timestamp() * 1000` can land one below)."""
    return (moment - _EPOCH) // _MILLISECOND


_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: A dotted-quad IPv4 address exactly as `ipaddress` accepts one (four decimal octets up to 255, no leading
#: zeros): the usual source address, recognized without building an address object (1.9 µs, as an IPv6
#: address is tried only after the IPv4 parse raised).
_IPV4: Final = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def ip_or_none(text: str | None) -> str | None:
    """`text` if it is an IPv4/IPv6 address, else None.

    SIEMs type the source address as an IP: Elasticsearch rejects the whole document over one bad value and
    OCSF's `ip_t` has a pattern, so anything else IDaaS might send stays in the vendor/unmapped fields.
    """
    if text is None:
        return None
    if _IPV4.fullmatch(text):
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text
