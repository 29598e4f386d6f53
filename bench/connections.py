"""What a new connection costs the bridge: the event loop thread's CPU per delivery when every delivery comes
on a connection of its own, against deliveries on one kept connection. The bridge's real listener (a
`Listener` on a bound socket, uvloop, the HTTP protocol, the webhook receiver with the durable submit stubbed
as in bench.receiver_path), a client process on loopback sending one delivery at a time.

    python -m bench.connections [N] [repeats]    per mode, min and median over `repeats` runs of N deliveries
                                                 (defaults 1000 and 9), µs of the loop thread's CPU per
                                                 delivery, modes alternated within one process
    python -m bench.connections once MODE N      N deliveries in MODE after the warm-up, and exit: under
                                                 `valgrind --tool=callgrind`, `once new N` minus `once keep N`
                                                 over N is what a connection adds (user space only)

The modes: `keep`, N deliveries on one keep-alive connection; `new`, a keep-alive connection per delivery,
the client closing it once answered (the bridge reads the end of stream); `close`, a connection per delivery
asking `Connection: close` (the bridge closes it after its answer, as Go clients without keep-alive do).
The loop thread's CPU includes the kernel's work in its system calls (accept, epoll, close); on loopback much
of the TCP handshake runs in the client's. Measure under the machine lock (docs/benchmarks.md); instruction
counts do not need it. Same rules as bench.receiver_path for comparing two versions.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path

import uvloop

from bench.deliveries import signed_deliveries
from bench.receiver_path import TOKEN, URL, WARM_UP, _bridge
from bridge import heap
from bridge.servers import Listener, bind, ops_config

MODES = ("keep", "new", "close")


def _answer(sock: socket.socket) -> None:
    """Read one whole answer (a content-length body) and check it is a 200."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"connection closed before an answer: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"unexpected answer: {data[:200]!r}")
    fields = head.lower().split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in fields if line.startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed within an answer")
        body += chunk


def _client(port: int, phases: list[tuple[str, int]]) -> None:
    """The client process: prepares every delivery (each unique: the dedup would answer a repeat
    differently), then runs each phase when told to on stdin, and says when it is done."""
    address = ("127.0.0.1", port)
    requests = iter([r.raw() for r in signed_deliveries(URL, TOKEN, sum(count for _, count in phases))])
    print("ready", flush=True)
    for mode, count in phases:
        sys.stdin.readline()
        if mode == "keep":
            with socket.create_connection(address) as sock:
                for _ in range(count):
                    sock.sendall(next(requests))
                    _answer(sock)
        else:
            for _ in range(count):
                raw = next(requests)
                if mode == "close":
                    line, _, rest = raw.partition(b"\r\n")
                    raw = line + b"\r\nConnection: close\r\n" + rest
                with socket.create_connection(address) as sock:
                    sock.sendall(raw)
                    _answer(sock)
        print("done", flush=True)


async def _serve(phases: list[tuple[str, int]]) -> list[float]:
    """Serve the client's phases after a keep-alive warm-up; the loop thread's CPU µs per delivery of each."""
    with tempfile.TemporaryDirectory() as work:
        bridge = _bridge(Path(work))
        sock = bind("127.0.0.1", 0, "server.port")
        listener = Listener(ops_config(bridge.receiver, bridge.settings.server), sock)
        listener.config.load()
        listener.lifespan = listener.config.lifespan_class(listener.config)
        await listener.startup()
        # What uvicorn's main loop sets (and renews every second): the Date header.
        listener.server_state.default_headers = [(b"date", formatdate(usegmt=True).encode())]
        plan = [("keep", WARM_UP), *phases]
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.connections",
            "client",
            str(sock.getsockname()[1]),
            *(f"{mode}:{count}" for mode, count in plan),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert client.stdin is not None and client.stdout is not None
        if await client.stdout.readline() != b"ready\n":
            raise RuntimeError("the client did not start")
        figures = []
        for index, (_, count) in enumerate(plan):
            if index == 1:
                heap.settle_after_startup()
            started = time.thread_time()
            client.stdin.write(b"go\n")
            if await client.stdout.readline() != b"done\n":
                raise RuntimeError("the client failed")
            figures.append((time.thread_time() - started) / max(count, 1) * 1e6)
        await client.wait()
        return figures[1:]


def main() -> None:
    if sys.argv[1:2] == ["client"]:
        phases = [(mode, int(count)) for mode, count in (arg.split(":") for arg in sys.argv[3:])]
        _client(int(sys.argv[2]), phases)
        return
    if sys.argv[1:2] == ["once"]:
        uvloop.run(_serve([(sys.argv[2], int(sys.argv[3]))]))
        os._exit(0)  # no teardown: only the deliveries count
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    figures = uvloop.run(_serve([(mode, count) for _ in range(repeats) for mode in MODES]))
    for index, mode in enumerate(MODES):
        mine = figures[index :: len(MODES)]
        print(f"{mode:5}  min {min(mine):6.1f} µs, median {statistics.median(mine):6.1f} µs per delivery")


if __name__ == "__main__":
    main()
