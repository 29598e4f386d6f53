"""Duplicate suppression by IDaaS delivery id.

IDaaS delivers at least once: a 5xx or a slow answer brings the same delivery again. Remembering the ids of
deliveries already made durable (published or spooled) for a TTL lets a retry get its 2xx without a second
copy in Kafka. Memory is bounded by `max_entries`; the oldest ids go first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from bridge import metrics


class DeliveryDedup:
    def __init__(
        self, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def seen(self, delivery_id: str) -> bool:
        """True if `delivery_id` was made durable within the TTL."""
        self._evict()
        return delivery_id in self._expiry

    def remember(self, delivery_id: str) -> None:
        self._expiry[delivery_id] = self._clock() + self._ttl
        self._expiry.move_to_end(delivery_id)
        self._evict()

    def _evict(self) -> None:
        now = self._clock()
        while self._expiry:
            oldest, expires = next(iter(self._expiry.items()))
            if expires > now and len(self._expiry) <= self._max:
                break
            del self._expiry[oldest]
        metrics.DEDUP_ENTRIES.set(len(self._expiry))
