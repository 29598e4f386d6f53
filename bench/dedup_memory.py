"""What the duplicate suppression (bridge/dedup.py) costs in memory and CPU, in one process with no I/O.

    python -m bench.dedup_memory [ids] [max_entries]     default 500,000 unique ids into a 200,000 cache

Remembers `ids` fresh UUID ids (text built per delivery, as the receiver parses it from each body) with
the daemon's TTL, so the cache fills and then evicts the oldest, as under the benchmark's sequence of runs.
Prints the process's RSS growth per remembered id (what the worker's peak RSS sees), then the bytes Python
allocated per id (tracemalloc: no allocator rounding or fragmentation), then the CPU of one claim + settle.
Each figure is one run: run it twice or more and compare old and new alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc
from pathlib import Path

from bridge.config import DedupSettings
from bridge.dedup import DeliveryDedup

#: A stride that spreads consecutive indexes over the 128 bits, so ids do not share long prefixes.
STRIDE = 0x9E3779B97F4A7C15


def delivery_id(index: int) -> str:
    """A UUID in the canonical text IDaaS sends, different for every index."""
    digits = f"{(index * STRIDE + (1 << 120)) % (1 << 128):032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def remember_all(ids: int, max_entries: int) -> tuple[DeliveryDedup[str], float]:
    """A cache that remembered `ids` fresh ids, and the CPU seconds that took."""
    dedup = DeliveryDedup[str](DedupSettings.ttl_seconds, max_entries)
    started = time.process_time()
    for index in range(ids):
        key = delivery_id(index)
        dedup.claim(key)
        dedup.settle(key, "stored", durable=True)
    return dedup, time.process_time() - started


async def main(ids: int, max_entries: int) -> None:
    held = min(ids, max_entries)
    before = rss_bytes()
    dedup, _ = remember_all(ids, max_entries)
    grown = rss_bytes() - before
    print(f"{held:,} ids remembered of {ids:,}: RSS +{grown / 2**20:.1f} MiB, {grown / held:.0f} B per id")
    del dedup
    tracemalloc.start()
    dedup, _ = remember_all(ids, max_entries)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"allocated: {current / held:.0f} B per id, {current / 2**20:.1f} MiB (peak {peak / 2**20:.1f})")
    del dedup
    baseline = time.process_time()
    for index in range(ids):
        delivery_id(index)
    making = time.process_time() - baseline
    _, seconds = remember_all(ids, max_entries)
    print(f"claim + settle: {(seconds - making) / ids * 1e9:.0f} ns per delivery (CPU)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("ids", type=int, nargs="?", default=500_000)
    parser.add_argument("max_entries", type=int, nargs="?", default=DedupSettings.max_entries)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.ids, arguments.max_entries))
