"""A listener's cap on open connections: past it, the connection idle longest is closed, never a request.

Why a cap: every accepted connection costs memory before anyone is authenticated (about 4 KiB before its
TLS ClientHello, about 40 KiB of OpenSSL and uvloop state once its handshake began, until its deadline;
docs/operations.md "Limits"). Without one, a single client opening silent connections as fast as it can
grew a worker by 600 MB in 2 s (when each held its TLS state from its accept), past the chart's memory
limit: the pod is OOM-killed, and every delivery IDaaS sends meanwhile fails.

Why not refuse new connections past the cap: then holding `limit` silent connections (renewed every
deadline) would lock every delivery out, the attack the protocol's deadlines were built against. So past
the cap the connection that has been idle longest is closed (nginx does the same with its reusable
connections when `worker_connections` run out): a connection waiting for its TLS handshake, its request
head, or its next keep-alive request, oldest activity first. A request in progress is never cut: its
connection is not idle. A new connection is the most recently active one, so a flood can close it only by
opening `limit` more connections before it sends its request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol


class Evictable(Protocol):
    """A connection the limit may close."""

    def evict(self) -> None:
        """Close at once (an abort: nothing more is read or written), because the listener is over its limit.
        The connection's end must not be reported to the limit again (`ConnectionLimit.closed`)."""


class ConnectionLimit:
    """One listener's open connections, the idle ones in the order they became idle.

    A connection is `opened` idle, `busy` while a request is in progress, `idle` again after its answer,
    and `closed` when it ends, unless the limit evicted it."""

    __slots__ = ("_evicted", "_high_water", "_idle", "_open", "limit")

    def __init__(self, limit: int, evicted: Callable[[], None]) -> None:
        """`evicted`: called once per connection closed for the limit (a metric)."""
        self.limit = limit
        self._evicted = evicted
        self._open = 0
        self._high_water = 0
        self._idle: OrderedDict[Evictable, None] = OrderedDict()

    @property
    def open(self) -> int:
        """Connections opened and not yet closed or evicted."""
        return self._open

    def take_high_water(self) -> int:
        """The most connections open at once since the last call (or since the start)."""
        high_water, self._high_water = self._high_water, self._open
        return high_water

    def opened(self, connection: Evictable) -> None:
        """A new connection, idle until its first request; past the limit, close the one idle longest (this
        one, when every other connection has a request in progress)."""
        self._open += 1
        self._idle[connection] = None
        if self._open > self.limit:
            victim, _ = self._idle.popitem(last=False)
            self._open -= 1
            self._evicted()
            victim.evict()
        elif self._open > self._high_water:
            self._high_water = self._open

    def busy(self, connection: Evictable) -> None:
        """A request is in progress on the connection: it is not closed for the limit until `idle`."""
        self._idle.pop(connection, None)

    def idle(self, connection: Evictable) -> None:
        """The connection waits for its next request: the most recently active idle connection now."""
        self._idle[connection] = None

    def closed(self, connection: Evictable) -> None:
        """The connection ended on its own (not evicted)."""
        self._idle.pop(connection, None)
        self._open -= 1
