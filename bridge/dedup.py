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
A UUID in its canonical text (IDaaS's ids are UUIDs) is kept as its 16 bytes, side by side with others in
one of a few thousand bins (bytearrays) picked by its hash; a ring of the bins' numbers keeps the order in
which ids were remembered. Any other id is kept as given, in a set. One key per id and one id per key,
never a hash or a prefix that could make two deliveries one and drop the second. A UUID written otherwise
(upper case, no hyphens) is another string, so it stays another id, as it is for IDaaS. Expiry times are
kept per bucket of ids remembered within `BUCKET_SECONDS`, not per id: a bucket is forgotten once the TTL
of its newest id passed, so an id is remembered for the TTL and at most `BUCKET_SECONDS` longer, never
less. Measured (`python -m bench.dedup_memory`): about 39 bytes of RSS per remembered UUID id, 7.4 MB for
the default 200,000 (a set of each UUID's number took 19 MB, an OrderedDict of id text to expiry time
54 MB).
"""

from __future__ import annotations

import asyncio
import re
import time
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Generic, TypeAlias, TypeVar

from bridge import metrics

Answer = TypeVar("Answer")


class Claim(Generic[Answer]):
    """The outcome of `DeliveryDedup.claim`: exactly one of the three holds.

    `duplicate`: the id was made durable within the TTL. `pending`: another copy is in progress; await it
    (shielded) for that copy's answer. Neither: the caller owns the id and must `settle` it.

    Immutable: its attributes are Final, which mypy enforces and the compiled class enforces at run time. A
    plain class, not a dataclass like the other value types of the compiled modules (`bridge.events.model`):
    a Final field in a class body cannot depend on a type variable.
    """

    def __init__(self, duplicate: bool = False, pending: asyncio.Future[Answer] | None = None) -> None:
        self.duplicate: Final = duplicate
        self.pending: Final = pending

    @property
    def owned(self) -> bool:
        return not self.duplicate and self.pending is None


#: The claim of a caller that owns the id (the common case), shared rather than built per delivery.
OWNED: Final[Claim[Any]] = Claim()


#: An id is remembered for the TTL and at most this much longer: the span of one bucket of expiry.
BUCKET_SECONDS: Final = 1.0

_CANONICAL_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: The bytes of a remembered UUID.
UUID_BYTES: Final = 16
#: Remembered UUIDs per bin when the cache is full, on average: a look-up searches one bin (C's memory
#: search over a few hundred bytes), and each bin is an object of its own.
IDS_PER_BIN: Final = 32

#: How a delivery id is remembered (`remembered_key`).
Key: TypeAlias = bytes | str


def remembered_key(delivery_id: str) -> Key:
    """`delivery_id` as it is remembered: a canonical UUID (lower-case 8-4-4-4-12 hex) as its 16 bytes,
    anything else as given. One-to-one: bytes never equal a str, and 16 bytes have one canonical UUID
    text."""
    if _CANONICAL_UUID.fullmatch(delivery_id) is None:
        return delivery_id
    return bytes.fromhex(delivery_id.replace("-", ""))


def _offset(uuids: bytearray, key: bytes) -> int:
    """Where `key` is in a bin, -1 when it is not. Only a match at a multiple of UUID_BYTES counts: the end
    of one UUID and the start of the next can spell a third."""
    at = uuids.find(key)
    while at > 0 and at % UUID_BYTES:
        at = uuids.find(key, at + 1)
    return at


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
        #: The remembered UUIDs, UUID_BYTES each, in bins picked by their hash (a power of two of them),
        #: each in the order they were remembered.
        bins = 1 << (max_entries // IDS_PER_BIN).bit_length()
        self._bins = [bytearray() for _ in range(bins)]
        self._bin_mask = bins - 1
        #: The remembered text ids, and their order.
        self._texts: set[str] = set()
        self._text_order: deque[str] = deque()
        #: Where each remembered id is, oldest first: its bin's number, or `_text_bin` (no bin's) for a
        #: text id; the oldest id of all is the oldest of its bin. A ring of `max_entries` numbers from
        #: `_oldest` on, grown until it holds that many.
        self._text_bin = bins
        self._order = array("I")
        self._oldest = 0
        self._count = 0
        #: The buckets of expiry of the remembered ids, in the same order.
        self._buckets: deque[_Bucket] = deque()
        #: Ids being made durable, with the key they will be remembered under (worked out once).
        self._in_progress: dict[str, Key] = {}
        #: The future of an id in progress that a second copy waits for (rare: not per delivery).
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        #: DEDUP_ENTRIES' value, set whenever the count changes (`metrics.value_of`: once per delivery).
        self._entries = metrics.value_of(metrics.DEDUP_ENTRIES)

    def claim(self, delivery_id: str) -> Claim[Answer]:
        """Reserve `delivery_id` for the caller unless it is durable already or another copy holds it.

        Synchronous on purpose: nothing can run between the check and the reservation.
        """
        self._expire()
        key = remembered_key(delivery_id)
        if isinstance(key, str):
            if key in self._texts:
                return Claim(duplicate=True)
        elif _offset(self._bins[hash(key) & self._bin_mask], key) >= 0:
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
            self._remember(key)
            self._entries.set(self._count)
        if pending is not None:
            pending.set_result(answer)

    def _remember(self, key: Key) -> None:
        """Remember a new key, the newest (`claim` reserved the id only because it was not remembered, and
        nothing else adds ids); the oldest one goes first if the cache is full."""
        if self._count == self._max:
            self._forget_oldest(1)
        if isinstance(key, str):
            self._texts.add(key)
            self._text_order.append(key)
            where = self._text_bin
        else:
            where = hash(key) & self._bin_mask
            self._bins[where] += key
        order = self._order
        at = (self._oldest + self._count) % self._max
        if at == len(order):  # the ring is still growing
            order.append(where)
        else:
            order[at] = where
        self._count += 1
        expiry = self._clock() + self._ttl
        buckets = self._buckets
        if buckets and expiry - buckets[-1].opened < BUCKET_SECONDS:
            newest = buckets[-1]
            newest.expiry = expiry
            newest.count += 1
        else:
            buckets.append(_Bucket(expiry))

    def _expire(self) -> None:
        """Forget the buckets whose TTL passed (the oldest first: expiry times only grow). Only `claim` does
        this, once per delivery; `settle` adds one id at most and drops the oldest when one is too many."""
        buckets = self._buckets
        now = self._clock()
        if not buckets or buckets[0].expiry > now:
            return
        while buckets and buckets[0].expiry <= now:
            self._forget_oldest(buckets[0].count)
        self._entries.set(self._count)

    def _forget_oldest(self, count: int) -> None:
        """Forget the `count` oldest ids, all of them in the oldest bucket: each the oldest of its bin."""
        order, bins, text = self._order, self._bins, self._text_bin
        oldest = self._oldest
        for _ in range(count):
            where = order[oldest]
            if where == text:
                self._texts.remove(self._text_order.popleft())
            else:
                del bins[where][:UUID_BYTES]
            oldest = (oldest + 1) % self._max
        self._oldest = oldest
        self._count -= count
        bucket = self._buckets[0]
        bucket.count -= count
        if not bucket.count:
            self._buckets.popleft()
