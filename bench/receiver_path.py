"""CPU of the receiver's own path per delivery: the HTTP protocol and the webhook receiver in process, on
uvloop, with the durable submit stubbed (answers "published" at once), one keep-alive connection, no sockets.

    python -m bench.receiver_path [N] [repeats]    min and median of `repeats` runs of N deliveries (defaults
                                                   2000 and 25), µs of the event loop thread's CPU
                                                   per delivery (librdkafka's threads, idle, left out)
    python -m bench.receiver_path once N [served]  N deliveries prepared, `served` of them (default all)
                                                   served, and exit: under `valgrind --tool=callgrind`,
                                                   the instructions of `once N` minus `once N 0`, over N
                                                   (`--separate-threads=yes`: the main thread's)

Each delivery is a unique, signed sample of bench/deliveries.py, fed whole to `data_received` as one read; the
answer is awaited before the next is fed. What Kafka's part costs is measured by bench.publish_path; what the
stages cost alone (verify, parse, normalize, encode) by bench.stages. To compare two code versions, run each
in its own process with that version's package first on PYTHONPATH, several times alternately
(docs/benchmarks.md), from a directory without a `bridge` package: `python -m` puts the current directory
first on the path.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path

import uvloop
from uvicorn.server import ServerState

from bench.deliveries import signed_deliveries
from bridge import heap
from bridge.app import Bridge
from bridge.config import load_settings
from bridge.http_protocol import HttpProtocol, http_listener
from bridge.publish.delivery import Durability
from bridge.routing import OutboundRecord
from tests.recording_transport import RecordingTransport

TOKEN = "bench-token-0123456789"
URL = "http://127.0.0.1:8080/webhooks/prod"
#: Deliveries served before measuring: the caches, the metrics' series and the heap settle.
WARM_UP = 2000


def _bridge(work: Path, **settings: str) -> Bridge:
    """`settings`: more environment settings (IDAAS_BRIDGE_...)."""
    env = {
        "IDAAS_BRIDGE_WEBHOOK_PROD_TOKENS": TOKEN,
        "IDAAS_BRIDGE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092",  # never connected to: start() is not run
        "IDAAS_BRIDGE_SPOOL__PATH": str(work / "spool"),
        "IDAAS_BRIDGE_LOGGING__LEVEL": "WARNING",
        # No statistics report within a run: their work depends on its wall time, not on the deliveries.
        "IDAAS_BRIDGE_KAFKA__STATISTICS_INTERVAL_SECONDS": "3600",
        **settings,
    }
    (work / "bridge.yaml").write_text("webhooks: [{name: prod}]\n")
    bridge = Bridge(load_settings(work / "bridge.yaml", env))

    async def published(record: OutboundRecord) -> Durability:
        return "published"

    bridge.receiver._delivery.submit = published  # type: ignore[method-assign]
    return bridge


class Connection:
    """One keep-alive connection of the bridge's protocol, fed one whole request at a time."""

    def __init__(self, bridge: Bridge) -> None:
        listener = http_listener(bridge.settings.server, bridge.receiver, 10_000)
        self.transport = RecordingTransport()
        state = ServerState()
        # What uvicorn's server sets (and renews every second) for the bridge's listeners: the Date header.
        state.default_headers = [(b"date", formatdate(usegmt=True).encode())]
        self.protocol: HttpProtocol = listener(state, asyncio.get_running_loop())
        self.protocol.connection_made(self.transport)

    async def serve(self, requests: list[bytes]) -> None:
        written = self.transport.written
        for raw in requests:
            self.protocol.data_received(raw)
            while not written:
                await asyncio.sleep(0)
            if not written.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"unexpected answer: {bytes(written[:200])!r}")
            written.clear()


async def _run(count: int, repeats: int) -> list[float]:
    with tempfile.TemporaryDirectory() as work:
        connection = Connection(_bridge(Path(work)))
        requests = [r.raw() for r in signed_deliveries(URL, TOKEN, WARM_UP + count * repeats)]
        await connection.serve(requests[:WARM_UP])
        heap.settle_after_startup()
        figures = []
        for start in range(WARM_UP, len(requests), count):
            started = time.thread_time()
            await connection.serve(requests[start : start + count])
            figures.append((time.thread_time() - started) / count * 1e6)
        return figures


async def _once(count: int, served: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        connection = Connection(_bridge(Path(work)))
        requests = [r.raw() for r in signed_deliveries(URL, TOKEN, WARM_UP + count)]
        await connection.serve(requests[:WARM_UP])
        heap.settle_after_startup()
        await connection.serve(requests[WARM_UP : WARM_UP + served])
    os._exit(0)  # no teardown: only the deliveries count


def main() -> None:
    if sys.argv[1:2] == ["once"]:
        count = int(sys.argv[2])
        uvloop.run(_once(count, int(sys.argv[3]) if len(sys.argv) > 3 else count))
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    figures = uvloop.run(_run(count, repeats))
    print(f"min {min(figures):.1f} µs, median {statistics.median(figures):.1f} µs per delivery")


if __name__ == "__main__":
    main()
