"""Duplicate suppression by IDaaS delivery id.

IDaaS delivers at least once: a 5xx or a slow answer brings the same delivery again. Remembering the ids of
deliveries already made durable (published or spooled) for a TTL lets a retry get its 2xx without a second
copy in Kafka. Memory is bounded by `max_entries`; the oldest ids go first.

Copies that arrive while the first is still being made durable (a retry racing a slow first attempt, or a
captured delivery replayed many times at once) must not each reach Kafka: the first copy reserves the id
synchronously, before any `await`, and the others wait for its answer and give the same one. If the first
copy ends in a 503 the id is not remembered, so the waiters get that 503 too and IDaaS's retry is processed
afresh: nobody gets a 2xx for an event that is not durable.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from bridge import metrics

Answer = TypeVar("Answer")


@dataclass(frozen=True, slots=True)
class Claim(Generic[Answer]):
    """The outcome of `DeliveryDedup.claim`: exactly one of the three holds.

    `duplicate`: the id was made durable within the TTL. `pending`: another copy is in progress; await it
    (shielded) for that copy's answer. Neither: the caller owns the id and must `settle` it.
    """

    duplicate: bool = False
    pending: asyncio.Future[Answer] | None = None

    @property
    def owned(self) -> bool:
        return not self.duplicate and self.pending is None


#: The claim of a caller that owns the id (the common case), shared rather than built per delivery.
OWNED: Final[Claim[Any]] = Claim()


class DeliveryDedup(Generic[Answer]):
    def __init__(
        self, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()
        #: Ids being made durable; the future exists once a second copy waits (rare: not per delivery).
        self._in_progress: dict[str, asyncio.Future[Answer] | None] = {}

    def claim(self, delivery_id: str) -> Claim[Answer]:
        """Reserve `delivery_id` for the caller unless it is durable already or another copy holds it.

        Synchronous on purpose: nothing can run between the check and the reservation.
        """
        self._expire()
        if delivery_id in self._expiry:
            return Claim(duplicate=True)
        if delivery_id in self._in_progress:
            pending = self._in_progress[delivery_id]
            if pending is None:
                pending = self._in_progress[delivery_id] = asyncio.get_running_loop().create_future()
            return Claim(pending=pending)
        self._in_progress[delivery_id] = None
        return OWNED

    def settle(self, delivery_id: str, answer: Answer, durable: bool) -> None:
        """The owner's outcome: remember the id if the event is durable, and hand `answer` to the waiters."""
        pending = self._in_progress.pop(delivery_id)
        if durable:
            expiry = self._expiry
            # A new key, so it goes last: `claim` reserved the id only because it was not remembered, and
            # nothing else adds ids.
            expiry[delivery_id] = self._clock() + self._ttl
            if len(expiry) > self._max:
                del expiry[next(iter(expiry))]
            metrics.DEDUP_ENTRIES.set(len(expiry))
        if pending is not None:
            pending.set_result(answer)

    def _expire(self) -> None:
        """Forget the ids whose TTL passed (the oldest first: expiry times only grow). Only `claim` does
        this, once per delivery; `settle` adds one id at most and drops the oldest when one is too many."""
        now = self._clock()
        expiry = self._expiry
        expired = 0
        while expiry:
            oldest = next(iter(expiry))
            if expiry[oldest] > now:
                break
            del expiry[oldest]
            expired += 1
        if expired:
            metrics.DEDUP_ENTRIES.set(len(expiry))
