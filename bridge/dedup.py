"""Duplicate suppression by IDaaS delivery id.

IDaaS delivers at least once: a 5xx or a slow answer brings the same delivery again. Remembering the ids of
deliveries already made durable (published or spooled) for a TTL lets a retry get its 2xx without a second
copy in Kafka. Memory is bounded by `max_entries`; the oldest ids go first.

Copies that arrive while the first is still being made durable (a retry racing a slow first attempt, or a
captured delivery replayed many times at once) must not each reach Kafka: the first copy reserves the id
synchronously, before any `await`, and the others wait for its answer and give the same one. If the first
copy ends in a 503 the id is not remembered, so the waiters get that 503 too and IDaaS's retry is processed
afresh: nobody gets a 2xx for an event that is not durable.

Memory: a full cache (`max_entries` ids) is a large part of a worker's memory, so an id is kept compactly.
A UUID in its canonical text (IDaaS's ids are UUIDs) is kept as its 128-bit number, any other id as given:
one key per id and one id per key, never a hash or a prefix that could make two deliveries one and drop the
second. A UUID written otherwise (upper case, no hyphens) is another string, so it stays another id, as it
is for IDaaS. Expiry times are kept per bucket of ids remembered within `BUCKET_SECONDS`, not per id: a
bucket is forgotten once the TTL of its newest id passed, so an id is remembered for the TTL and at most
`BUCKET_SECONDS` longer, never less. Measured (`python -m bench.dedup_memory`): about 100 bytes of RSS per
remembered UUID id, 19 MB for the default 200,000 (an OrderedDict of id text to expiry time took 54 MB).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeAlias, TypeVar

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


#: An id is remembered for the TTL and at most this much longer: the span of one bucket of expiry.
BUCKET_SECONDS: Final = 1.0

_CANONICAL_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

#: How a delivery id is remembered (`remembered_key`).
Key: TypeAlias = int | str


def remembered_key(delivery_id: str) -> Key:
    """`delivery_id` as it is remembered: a canonical UUID (lower-case 8-4-4-4-12 hex) as its number (a
    44-byte int instead of an 85-byte str), anything else as given. One-to-one: an int never equals a str,
    and a number has one canonical UUID text."""
    if _CANONICAL_UUID.fullmatch(delivery_id) is None:
        return delivery_id
    return int(delivery_id.replace("-", ""), 16)


class _Bucket:
    """Consecutive ids remembered within `BUCKET_SECONDS` of the first: forgotten together once the newest
    one's TTL passed."""

    __slots__ = ("count", "expiry", "opened")

    def __init__(self, expiry: float) -> None:
        self.opened = expiry
        self.expiry = expiry
        self.count = 1


class DeliveryDedup(Generic[Answer]):
    def __init__(
        self, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._remembered: set[Key] = set()
        #: The remembered keys, oldest first, and their buckets' expiry in the same order.
        self._order: deque[Key] = deque()
        self._buckets: deque[_Bucket] = deque()
        #: Ids being made durable, with the key they will be remembered under (worked out once).
        self._in_progress: dict[str, Key] = {}
        #: The future of an id in progress that a second copy waits for (rare: not per delivery).
        self._waiting: dict[str, asyncio.Future[Answer]] = {}

    def claim(self, delivery_id: str) -> Claim[Answer]:
        """Reserve `delivery_id` for the caller unless it is durable already or another copy holds it.

        Synchronous on purpose: nothing can run between the check and the reservation.
        """
        self._expire()
        key = remembered_key(delivery_id)
        if key in self._remembered:
            return Claim(duplicate=True)
        if delivery_id in self._in_progress:
            pending = self._waiting.get(delivery_id)
            if pending is None:
                pending = self._waiting[delivery_id] = asyncio.get_running_loop().create_future()
            return Claim(pending=pending)
        self._in_progress[delivery_id] = key
        return OWNED

    def settle(self, delivery_id: str, answer: Answer, durable: bool) -> None:
        """The owner's outcome: remember the id if the event is durable, and hand `answer` to the waiters."""
        key = self._in_progress.pop(delivery_id)
        pending = self._waiting.pop(delivery_id, None)
        if durable:
            # A new key, so it goes last: `claim` reserved the id only because it was not remembered, and
            # nothing else adds ids.
            self._remembered.add(key)
            self._order.append(key)
            expiry = self._clock() + self._ttl
            buckets = self._buckets
            if buckets and expiry - buckets[-1].opened < BUCKET_SECONDS:
                newest = buckets[-1]
                newest.expiry = expiry
                newest.count += 1
            else:
                buckets.append(_Bucket(expiry))
            if len(self._remembered) > self._max:
                self._forget_oldest(1)
            metrics.DEDUP_ENTRIES.set(len(self._remembered))
        if pending is not None:
            pending.set_result(answer)

    def _expire(self) -> None:
        """Forget the buckets whose TTL passed (the oldest first: expiry times only grow). Only `claim` does
        this, once per delivery; `settle` adds one id at most and drops the oldest when one is too many."""
        buckets = self._buckets
        now = self._clock()
        if not buckets or buckets[0].expiry > now:
            return
        while buckets and buckets[0].expiry <= now:
            self._forget_oldest(buckets[0].count)
        metrics.DEDUP_ENTRIES.set(len(self._remembered))

    def _forget_oldest(self, count: int) -> None:
        """Forget the `count` oldest ids, all of them in the oldest bucket."""
        order, remembered = self._order, self._remembered
        for _ in range(count):
            remembered.remove(order.popleft())
        oldest = self._buckets[0]
        oldest.count -= count
        if not oldest.count:
            self._buckets.popleft()
