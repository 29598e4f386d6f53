"""A burst of new connections while the loop is busy: how long until every one of them is answered. The
bridge's real listener (a `Listener` on a bound socket, uvloop, the HTTP protocol, the webhook receiver with
the durable submit stubbed as in bench.receiver_path), two client processes on loopback (uvloop): one keeps
the M keep-alive connections delivering throughout, the other dials the bursts, so that neither's own work
(the burst's TLS handshakes on the client's side) delays the other's figures.

    python -m bench.burst N M [tls] [bursts]    per burst, one line: M keep-alive connections deliver, paced
                                                at BURST_RATE deliveries/s together (default 2000), and
                                                after 0.5 s N new connections are dialled at once, each
                                                sending one delivery (defaults: plain HTTP, 5 bursts)

Per burst: the time until every new connection had its answer and the worst, median and p99 first answer
(from the moment the burst was dialled; a SYN dropped by a full accept queue is retried by the kernel after
1 s, so answers past 1 s are often connections the listener did not take in time, but also, over TLS on two
cores, the client's own handshakes); the keep-alive deliveries' p99 and worst latency during the burst (from
the moment each was due: what the burst costs the connections already served); the accept queue's peak (the
listening socket's TCP_INFO, sampled every millisecond by the client on a copy of its descriptor);
ListenOverflows and ListenDrops (/proc/net/netstat, TcpExt: the whole network namespace, so another
engineer's run shows there too). The new connections stay open until the burst ends, as a client's would.
TLS uses the development certificate (ECDSA P-256), the client verifying nothing. Measure under the machine
lock. To compare two versions, run each with that version's `bridge` package first on the path
(bench.receiver_path says how), alternately.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from email.utils import formatdate
from pathlib import Path
from typing import Any, cast

import uvloop

from bench.deliveries import signed_deliveries
from bench.receiver_path import TOKEN, URL, _bridge
from bridge.http_protocol import http_listener
from bridge.servers import Listener, bind, ops_config, tls_context

ROOT = Path(__file__).resolve().parent.parent
#: The keep-alive connections' deliveries per second, together.
RATE = int(os.environ.get("BURST_RATE", "2000"))
#: The keep-alive connections deliver this long before the burst is dialled, and after its last answer.
LEAD_SECONDS = 0.5
#: The keep-alive client's deliveries are prepared in advance, enough for this many seconds.
KEEP_SECONDS = 40
#: A burst not answered whole by then is reported as such.
BURST_DEADLINE_SECONDS = 30.0
#: TCP_INFO: after eight one-byte fields, u32 rto, ato, snd_mss, rcv_mss, then unacked, which on a listening
#: socket is its accept queue's length.
_TCP_INFO = struct.Struct("24xI")


def _tcp_ext() -> dict[str, int]:
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()]
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names[0] == "TcpExt:":
            return {name: int(value) for name, value in zip(names[1:], values[1:], strict=True)}
    return {}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


class _QueueSampler(threading.Thread):
    """The peak of the listening socket's accept queue, read every millisecond until stopped."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(fileno=fd)
        self.peak = 0
        self.running = threading.Event()

    def run(self) -> None:
        while True:
            self.running.wait()
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            self.peak = max(self.peak, _TCP_INFO.unpack_from(info)[0])
            time.sleep(0.001)


async def _answer(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"unexpected answer: {head[:200]!r}")
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":", 1)[1]))


def _context(tls: bool) -> ssl.SSLContext | None:
    if not tls:
        return None
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def _requests(tls: bool, count: int) -> Iterator[bytes]:
    url = URL.replace("http:", "https:") if tls else URL  # the signature covers the scheme
    return iter([request.raw() for request in signed_deliveries(url, TOKEN, count)])


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        print(f"a keep-alive connection failed: {task.exception()!r}", file=sys.stderr, flush=True)


async def _keep(port: int, m: int, tls: bool) -> None:
    """The keep-alive client: M connections deliver at RATE together until stdin closes; asked
    `window START END` (perf_counter, CLOCK_MONOTONIC: the same in every process), it answers the p99 and
    worst latency of the deliveries due within the window, and their count."""
    loop = asyncio.get_running_loop()
    requests = _requests(tls, RATE * KEEP_SECONDS)
    context = _context(tls)
    kept = [await asyncio.open_connection("127.0.0.1", port, ssl=context) for _ in range(m)]
    latencies: list[tuple[float, float]] = []  # (due, latency)

    async def deliver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, due: float) -> None:
        for request in requests:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            writer.write(request)
            await _answer(reader)
            latencies.append((due, time.perf_counter() - due))
            due += m / RATE

    now = time.perf_counter()
    loopers = [asyncio.create_task(deliver(*connection, now + i / RATE)) for i, connection in enumerate(kept)]
    for task in loopers:
        task.add_done_callback(_report_failure)
    print("ready", flush=True)
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        start, end = (float(value) for value in line.split()[1:])
        during = [latency for due, latency in latencies if start <= due <= end]
        print(
            json.dumps([_percentile(during, 0.99) * 1000, max(during, default=0.0) * 1000, len(during)]),
            flush=True,
        )
    for task in loopers:
        task.cancel()


async def _burst(port: int, n: int, tls: bool, sampler: _QueueSampler) -> dict[str, Any]:
    requests = _requests(tls, n)
    context = _context(tls)
    dialled: list[asyncio.StreamWriter] = []
    sampler.peak = 0
    sampler.running.set()
    started = time.perf_counter()

    async def new_connection() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        dialled.append(writer)
        writer.write(next(requests))
        await _answer(reader)
        return time.perf_counter() - started

    firsts = await asyncio.wait_for(
        asyncio.gather(*(new_connection() for _ in range(n))), BURST_DEADLINE_SECONDS
    )
    ended = time.perf_counter()
    sampler.running.clear()
    for writer in dialled:
        writer.close()
    return {
        "window": [started, ended],
        "all_answered_ms": (ended - started) * 1000,
        "first_answer_ms": [
            statistics.median(firsts) * 1000,
            _percentile(firsts, 0.99) * 1000,
            max(firsts) * 1000,
        ],
        "over_1s": sum(1 for first in firsts if first >= 1.0),
        "queue_peak": sampler.peak,
    }


def _client(port: int, fd: int, n: int, tls: bool) -> None:
    """The burst client: a burst whenever told to on stdin, its figures as one JSON line."""
    sampler = _QueueSampler(fd)
    sampler.start()
    print("ready", flush=True)
    while sys.stdin.readline():
        print(json.dumps(uvloop.run(_burst(port, n, tls, sampler))), flush=True)


async def _serve(n: int, m: int, tls: bool, bursts: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        # Every delivery of a burst is in progress at once: none is to meet the receiver's 503, nor the cap
        # on connections.
        bridge = _bridge(
            Path(work),
            IDAAS_BRIDGE_SERVER__LIMIT_CONCURRENCY="100000",
            IDAAS_BRIDGE_SERVER__MAX_CONNECTIONS="200001",
        )
        server = bridge.settings.server
        sock = bind("127.0.0.1", 0, "server.port")
        config = ops_config(bridge.receiver, server)
        context = None
        if tls:
            subprocess.run([str(ROOT / "deploy/dev/dev-cert.sh"), work], check=True, capture_output=True)
            certificate = replace(
                server, tls_cert_file=f"{work}/dev-cert.pem", tls_key_file=f"{work}/dev-key.pem"
            )
            context = tls_context(certificate, bridge.settings.sources)
        # The public listener's limits (bridge.servers.public_config), without its lifespan. uvicorn types
        # `http` as an asyncio.Protocol class; it only calls it, and the buffered protocol serves.
        config.http = cast(
            type[asyncio.Protocol],
            http_listener(server, bridge.receiver, 2 * server.limit_concurrency, context),
        )
        listener = Listener(config, sock)
        config.load()
        listener.lifespan = config.lifespan_class(config)
        await listener.startup()
        # What uvicorn's main loop sets (and renews every second): the Date header.
        listener.server_state.default_headers = [(b"date", formatdate(usegmt=True).encode())]
        port = sock.getsockname()[1]
        scheme = "tls" if tls else "http"
        keep = await _start("keep", str(port), str(m), scheme)
        client = await _start("client", str(port), str(sock.fileno()), str(n), scheme, fd=sock.fileno())
        await asyncio.sleep(LEAD_SECONDS)
        print(
            f"{n} new connections, {m} keep-alive at {RATE}/s, {'https' if tls else 'http'}; "
            f"load {os.getloadavg()[0]:.2f}"
        )
        for _ in range(bursts):
            before = _tcp_ext()
            client.stdin.write(b"go\n")
            figures = json.loads(await client.stdout.readline())
            after = _tcp_ext()
            keep.stdin.write(b"window %f %f\n" % tuple(figures["window"]))
            figures["kept_during_ms"] = json.loads(await keep.stdout.readline())
            await asyncio.sleep(LEAD_SECONDS)
            drops = {name: after[name] - before[name] for name in ("ListenOverflows", "ListenDrops")}
            median, p99, worst = figures["first_answer_ms"]
            kept_p99, kept_worst, kept_count = figures["kept_during_ms"]
            print(
                f"all answered {figures['all_answered_ms']:7.0f} ms; first answer median {median:6.0f}, p99 "
                f"{p99:6.0f}, max {worst:6.0f} ms, {figures['over_1s']:4} past 1 s; keep-alive during it "
                f"p99 {kept_p99:5.1f}, max {kept_worst:5.1f} ms ({kept_count}); accept queue peak "
                f"{figures['queue_peak']:4}; overflows {drops['ListenOverflows']}, "
                f"drops {drops['ListenDrops']}",
                flush=True,
            )
        for process in (client, keep):
            process.stdin.close()
            await process.wait()


async def _start(*arguments: str, fd: int | None = None) -> Any:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.burst", *arguments,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, pass_fds=() if fd is None else (fd,),
    )  # fmt: skip
    assert process.stdout is not None  # stdout=PIPE
    if await process.stdout.readline() != b"ready\n":
        raise RuntimeError(f"the {arguments[0]} client did not start")
    return process


def main() -> None:
    if sys.argv[1:2] == ["client"]:
        port, fd, n = (int(arg) for arg in sys.argv[2:5])
        _client(port, fd, n, sys.argv[5] == "tls")
        return
    if sys.argv[1:2] == ["keep"]:
        uvloop.run(_keep(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "tls"))
        return
    n, m = int(sys.argv[1]), int(sys.argv[2])
    tls = sys.argv[3:4] == ["tls"]
    bursts = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    uvloop.run(_serve(n, m, tls, bursts))


if __name__ == "__main__":
    main()
