"""glibc's malloc thresholds: TLS read buffers (256 KiB each) go back to the system when freed, unless the
operator set the thresholds in glibc's environment. Each case runs in a fresh interpreter: the setting is
process-wide and stays once made."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

ROOT = Path(__file__).resolve().parents[2]
BUFFERS = 200

#: Prints whether the thresholds were set, then the share of 200 freed 256 KiB buffers (written through,
#: each between two that stay, as connections close while others live on) that left the process's
#: resident memory when they were freed. The first buffer freed is what raises glibc's dynamic threshold,
#: as the first TLS connection closed does.
PROBE = f"""
import ctypes
from bridge import heap

applied = heap.set_malloc_thresholds()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 256 * 1024


def resident_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


libc.free(libc.malloc(SIZE))
buffers = [libc.malloc(SIZE) for _ in range(2 * {BUFFERS} + 1)]
for buffer in buffers:
    ctypes.memset(buffer, 1, SIZE)
before = resident_kib()
for buffer in buffers[1::2]:
    libc.free(buffer)
print(applied, (before - resident_kib()) * 1024 / ({BUFFERS} * SIZE))
"""


def probe(**environment: str) -> tuple[bool, float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=clean | {"PYTHONPATH": str(ROOT)} | environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    applied, returned = result.stdout.split()
    return applied == "True", float(returned)


def test_freed_tls_sized_buffers_leave_resident_memory() -> None:
    applied, returned = probe()
    assert applied
    assert returned > 0.9


@pytest.mark.parametrize(
    "environment",
    [
        {"MALLOC_MMAP_THRESHOLD_": str(4 * 2**20)},
        {"MALLOC_TRIM_THRESHOLD_": str(4 * 2**20)},
        {"GLIBC_TUNABLES": f"glibc.malloc.trim_threshold={4 * 2**20}"},
    ],
)
def test_thresholds_set_in_glibcs_environment_are_left_alone(environment: dict[str, str]) -> None:
    applied, _ = probe(**environment)
    assert not applied


def test_the_operators_mmap_threshold_stays_in_force() -> None:
    _, returned = probe(GLIBC_TUNABLES=f"glibc.malloc.mmap_threshold={4 * 2**20}")
    assert returned < 0.1  # 256 KiB is below the operator's 4 MiB: the buffers stay on the heap


class Connection:
    def evict(self) -> None:
        raise AssertionError("nothing is over the limit here")


def test_the_heap_is_trimmed_after_a_flood_of_connections_and_not_for_ordinary_traffic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`trim_after_floods` trims once per check in which the listener held FLOOD_CONNECTIONS at once."""
    from bridge import heap
    from bridge.connection_limit import ConnectionLimit

    trims: list[float] = []
    monkeypatch.setattr(heap, "TRIM_CHECK_SECONDS", 0.05)
    monkeypatch.setattr(heap, "release_free_memory", lambda: trims.append(time.monotonic()) or True)
    connections = ConnectionLimit(10 * heap.FLOOD_CONNECTIONS, lambda: None)

    async def scenario() -> None:
        trimming = asyncio.create_task(heap.trim_after_floods(connections))
        ordinary = [Connection() for _ in range(heap.FLOOD_CONNECTIONS - 1)]
        for connection in ordinary:
            connections.opened(connection)
        await asyncio.sleep(0.2)
        assert trims == []
        flood = [Connection() for _ in range(2 * heap.FLOOD_CONNECTIONS)]
        for connection in flood:
            connections.opened(connection)
        for connection in flood + ordinary:
            connections.closed(connection)
        await asyncio.sleep(0.2)
        trimming.cancel()

    asyncio.run(scenario())
    assert len(trims) == 1  # the check after the flood; the next ones saw no more than they held then


def test_free_heap_memory_goes_back_to_the_system() -> None:
    """`release_free_memory` runs glibc's malloc_trim: the pages of freed, fragmented blocks leave RSS."""
    probe = """
import ctypes
from bridge import heap

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])
blocks = []
# 2,000 x 64 KiB written through, every other one freed: free chunks between live ones, which trimming the
# top of the heap cannot return. malloc_trim gives back the whole pages inside each free chunk: 15 of the
# 16 a 64 KiB chunk spans (its header sits in the first), about 60,000 KiB of the 64,000 freed.
for _ in range(2000):
    block = libc.malloc(65536)
    ctypes.memset(block, 1, 65536)
    blocks.append(block)
for block in blocks[::2]:
    libc.free(block)
before = rss()
assert heap.release_free_memory()
print(before - rss())
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
    )
    released_kib = int(result.stdout)
    assert released_kib > 48_000, f"{released_kib} KiB released of 64,000 freed (about 60,000 returnable)"
