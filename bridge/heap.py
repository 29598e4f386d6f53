"""The process's memory management, set for a server whose request path makes many short-lived objects:
CPython's cyclic garbage collector, and glibc's malloc thresholds for TLS connections.

Under load CPython's collector ran often (it collects the youngest generation every 700 net container
allocations, and those cascade into the older ones): 7 % of the event loop's busy time in a profile at 128
connections. What start-up built (modules, settings, metrics, the application) lives as long as the process;
frozen, no later collection walks it again. A larger young generation makes collections rarer: requests
leave few reference cycles, so garbage does not pile up meanwhile.

uvloop's TLS protocol allocates a 256 KiB read buffer per connection. glibc serves the first one with its
own mapping, then, once one is freed, raises its mmap threshold past 256 KiB and carves them from the heap,
where the pages touched stay resident: 49 KiB per TLS connection held, 28 KiB with the threshold fixed at
128 KiB (a mapping made and unmapped per connection; docs/benchmarks.md, seventh round). The other 256 KiB
allocation, CPython's `SSLObject.read` per read, is avoided by TlsHttpProtocol: with the threshold fixed it
cost a mapping per read, 10 us. Fixing the mmap threshold also fixes the trim threshold, which glibc would
leave at 128 KiB: the producer threads' heaps were then given back and faulted in again on every delivery,
so it is set to what the dynamic rule reaches after those buffers (2 x 256 KiB).

A flood of connections leaves the heap larger than what it holds: thousands of TLS connections made and
closed at once (OpenSSL's state, interleaved with everything else the loop allocates) leave glibc's main
heap fragmented, its free memory resident and not at its top, so the trim threshold never returns it.
Measured: 6,000 TLS connections held and closed, repeated, grew a worker by about 50 MB a round (165 →
488 MB at the peaks of eight rounds) with a few MB in use; `malloc_trim(0)` gave 240 → 72 MB back in 39 ms.
So every TRIM_CHECK_SECONDS a listener that held FLOOD_CONNECTIONS connections at once since the last check
trims the heap (`trim_after_floods`); the ordinary traffic of a few connections never does.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import platform
from typing import Final

from bridge.connection_limit import ConnectionLimit

YOUNG_GENERATION_THRESHOLD: Final = 10_000

#: mallopt's parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD: Final = -1
M_MMAP_THRESHOLD: Final = -3
#: Allocations from this size up (the TLS read buffers) get their own mapping, given back when freed.
MMAP_THRESHOLD_BYTES: Final = 128 * 1024
#: The heap's free top is given back to the system past this size.
TRIM_THRESHOLD_BYTES: Final = 512 * 1024
#: How often a listener checks whether it held a flood of connections, and how many that is.
TRIM_CHECK_SECONDS: Final = 5.0
FLOOD_CONNECTIONS: Final = 512
#: How an operator sets the thresholds in glibc's environment (either wins over the bridge's): variables,
#: and tunables in GLIBC_TUNABLES.
OPERATOR_VARIABLES: Final = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
OPERATOR_TUNABLES: Final = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold")


def set_malloc_thresholds() -> bool:
    """Call once at start-up, before the workers are forked (they inherit the setting). Whether the
    thresholds were set: not under another C library, nor when the environment sets either of them
    (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or the same tunables in GLIBC_TUNABLES)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(name in os.environ for name in OPERATOR_VARIABLES) or any(
        t in tunables for t in OPERATOR_TUNABLES
    ):
        return False
    libc = ctypes.CDLL(None)
    # mallopt returns 1 on success; both are set, the second even if the first failed.
    mmap_set: bool = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    trim_set: bool = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    return mmap_set and trim_set


def settle_after_startup() -> None:
    """Call once, when the long-lived objects exist and before the first request."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)


def release_free_memory() -> bool:
    """Give the free memory inside glibc's heaps back to the system (`malloc_trim(0)`: tens of ms after a
    flood, during which other threads' allocations wait). Whether it ran: glibc only."""
    if platform.libc_ver()[0] != "glibc":
        return False
    ctypes.CDLL(None).malloc_trim(0)
    return True


async def trim_after_floods(connections: ConnectionLimit) -> None:
    """Run for a listener's life: trim the heap after any TRIM_CHECK_SECONDS in which the listener held
    FLOOD_CONNECTIONS connections at once. A listener capped below that (the operations port) never does:
    it returns at once."""
    if connections.limit < FLOOD_CONNECTIONS:
        return
    while True:
        await asyncio.sleep(TRIM_CHECK_SECONDS)
        if connections.take_high_water() >= FLOOD_CONNECTIONS:
            release_free_memory()
