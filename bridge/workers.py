"""`server.workers` above 1: one process per core serving the webhook listener.

The serving process (the parent) binds the sockets, creates what the workers share (the failure streaks,
the readiness table, the metrics directory), then forks the workers before any thread exists: librdkafka's
threads do not survive a fork, and a lock another thread held at the fork would stay held in the child for
ever. Each worker builds its own Bridge (its own producers, its spool directory spool.path/worker-<i>, its
drainer, its dedup cache) and serves the webhook listener on its own socket of the port (bind_group,
SO_REUSEPORT), which the kernel hashes each new connection to. The parent keeps every worker's socket open:
the connections queued on a dead worker's socket wait there for its replacement, none is reset. The
parent serves the operations listener: /healthz, /readyz (ready once every worker is), /metrics (every
worker's values added up under the usual names, with the process tree's CPU and memory). It stays
single-threaded, so a worker that ends unasked can be forked again: that is logged and counted
(idaas_bridge_worker_restarts_total), at most RESTART_LIMIT times in RESTART_WINDOW_SECONDS; past that, or
when a worker cannot start for a configuration reason, the parent stops them all and exits with an error
(the pod restarts, its log says why).

SIGTERM or SIGINT to the parent: /readyz turns false, every worker gets SIGTERM and shuts down within
server.shutdown_grace_seconds (its own budget, started by that signal, bridge/shutdown.py); the parent
waits for them within the same budget (SIGKILL for what is left a moment past it) and exits 0. Workers
run in their own process group, so a Ctrl-C in a terminal reaches only the parent, which passes it on,
and get SIGTERM from the kernel if the parent dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableSequence
from pathlib import Path
from types import FrameType
from typing import Any, Final, NoReturn, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from bridge import heap, metrics
from bridge.app import Bridge, WorkerRole, create_app
from bridge.cli.exits import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME
from bridge.config import ConfigError, Settings
from bridge.cpus import cpu_limit
from bridge.guard import GuardState
from bridge.http_message import Answer, json_answer
from bridge.ops_endpoints import OpsEndpoints, metrics_answer, readiness_answer
from bridge.publish.stranded import hold, spool_directory
from bridge.servers import Listener, PublicServer, ops_config, public_config
from bridge.shutdown import ShutdownBudget

log = logging.getLogger(__name__)

#: Unasked worker exits the parent repairs within RESTART_WINDOW_SECONDS before it gives up.
RESTART_LIMIT: Final = 5
RESTART_WINDOW_SECONDS: Final = 60.0
#: How often the parent looks for ended workers.
REAP_SECONDS: Final = 0.1
#: How long past the shutdown budget the parent waits before it SIGKILLs a worker: the worker's budget
#: started a moment later (at the signal the parent sent), and exiting takes a moment too.
KILL_MARGIN_SECONDS: Final = 1.0
#: The per-process metric files, in the spool volume: the one place a read-only container can write.
METRICS_DIRECTORY: Final = ".metrics"
PR_SET_PDEATHSIG: Final = 1


def worker_count(settings: Settings) -> int:
    """server.workers resolved (`auto`: the CPU limit), checked against what the workers share."""
    requested = settings.server.workers
    count = cpu_limit() if requested == "auto" else requested
    spool, sources = settings.spool, settings.sources
    if count > 1 and spool.max_bytes // count < spool.segment_bytes:
        raise sources.error(
            "spool.max_bytes",
            f"the {count} workers of {sources.name('server.workers', requested)} share it, "
            f"{spool.max_bytes // count} bytes each, less than "
            f"{sources.name('spool.segment_bytes', spool.segment_bytes)}; raise spool.max_bytes or lower "
            "spool.segment_bytes",
            spool.max_bytes,
        )
    return count


class ReadinessTable:
    """Each worker's last readiness report, in memory the workers share with the parent."""

    FIELDS: Final = ("ready", "shutting_down", "kafka_reachable", "spool_has_room", "spooled_records")

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._width = 1 + len(self.FIELDS)  # a "reported" flag, then the fields
        fork = multiprocessing.get_context("fork")
        self._cells = cast(MutableSequence[float], fork.RawArray("d", workers * self._width))

    def report(self, worker: int, readiness: Mapping[str, Any]) -> None:
        base = worker * self._width
        for offset, name in enumerate(self.FIELDS, start=1):
            self._cells[base + offset] = float(readiness[name])
        self._cells[base] = 1.0

    def clear(self, worker: int) -> None:
        self._cells[worker * self._width] = 0.0

    def read(self, worker: int) -> dict[str, Any] | None:
        """The worker's last report; None before its first one (starting, or dead)."""
        base = worker * self._width
        if not self._cells[base]:
            return None
        report: dict[str, Any] = {
            name: bool(self._cells[base + offset]) for offset, name in enumerate(self.FIELDS, start=1)
        }
        report["spooled_records"] = int(self._cells[base + len(self.FIELDS)])
        return report


class ProcessTreeCollector(Collector):
    """process_* for the parent and its workers together, under the usual names (the dashboard's CPU and
    memory per pod): CPU seconds, memory and open files added up, the parent's start time and file limit.
    A restarted worker's CPU seconds leave the sum: Prometheus reads that as a counter reset."""

    SUMMED: Final = frozenset(
        {
            "process_cpu_seconds",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
        }
    )

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self._pids = pids

    def collect(self) -> Iterator[Metric]:
        parent = {family.name: family for family in ProcessCollector(registry=None).collect()}
        # The parent's own values start the sums: its /proc files are read once per scrape.
        totals = {name: family.samples[0].value for name, family in parent.items() if name in self.SUMMED}
        for pid in self._pids():
            for family in ProcessCollector(pid=functools.partial(int, pid), registry=None).collect():
                if family.name in totals:
                    totals[family.name] += family.samples[0].value
        for name, family in parent.items():
            if name not in totals:
                yield family
            elif family.type == "counter":
                yield CounterMetricFamily(name, family.documentation, value=totals[name])
            else:
                yield GaugeMetricFamily(name, family.documentation, value=totals[name])


class WorkerPool:
    """The parent's view of its workers: forks them, restarts the ones that end unasked, stops them."""

    def __init__(
        self, settings: Settings, public_sockets: list[socket.socket], metrics_directory: Path
    ) -> None:
        self.settings = settings
        self.count = len(public_sockets)
        #: Worker i's webhook listener, held here too: a worker that dies leaves its socket listening, so
        #: the connections the kernel queued on it wait for the replacement instead of being reset.
        self.public_sockets = public_sockets
        self.metrics_directory = metrics_directory
        self.guard = GuardState([hook.name for hook in settings.webhooks], time.time(), shared=True)
        self.readiness = ReadinessTable(self.count)
        #: pid -> worker number, for the workers alive.
        self.pids: dict[int, int] = {}
        self.budget = ShutdownBudget(settings.server.shutdown_grace_seconds)
        self.stopping = False
        self.exit_code = EXIT_OK
        self._restarts: deque[float] = deque()
        #: Descriptors a worker closes after the fork: the parent's operations listener and connections.
        self.parent_descriptors: Callable[[], Iterable[int]] = lambda: ()

    def start(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:
            _run_worker(self, index)
        self.pids[pid] = index
        metrics.WORKERS.set(len(self.pids))
        log.info("worker started", extra={"worker": index, "pid": pid})

    def stop(self, exit_code: int = EXIT_OK) -> None:
        """SIGTERM to every worker; the shutdown budget starts now. Later calls keep the first code."""
        if self.stopping:
            return
        self.stopping = True
        self.exit_code = exit_code
        self.budget.start()
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def reap(self) -> None:
        """Handle every worker that ended: forget it, restart it if nobody asked it to end."""
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            index = self.pids.pop(pid, None)
            if index is None:
                continue
            mark_process_dead(pid, str(self.metrics_directory))  # type: ignore[no-untyped-call]
            self.readiness.clear(index)
            metrics.WORKERS.set(len(self.pids))
            self._ended(index, pid, status)

    def _ended(self, index: int, pid: int, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        where = {"worker": index, "pid": pid, "exit_status": code}
        if self.stopping:
            log.info("worker stopped", extra=where)
            return
        if code == EXIT_CONFIG:
            log.error("a worker could not start (configuration); stopping", extra=where)
            self.stop(EXIT_CONFIG)
            return
        now = time.monotonic()
        while self._restarts and self._restarts[0] < now - RESTART_WINDOW_SECONDS:
            self._restarts.popleft()
        if len(self._restarts) >= RESTART_LIMIT:
            log.error(
                f"worker ended unasked {RESTART_LIMIT + 1} times within {RESTART_WINDOW_SECONDS:.0f} s; "
                "stopping",
                extra=where,
            )
            self.stop(EXIT_RUNTIME)
            return
        self._restarts.append(now)
        metrics.WORKER_RESTARTS.inc()
        log.error("worker ended unasked; starting it again", extra=where)
        self.start(index)

    def kill_remaining(self) -> None:
        for pid, index in self.pids.items():
            log.error(
                "worker still running past the shutdown budget; killed", extra={"worker": index, "pid": pid}
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # --- the operations endpoints ----------------------------------------------------------------------

    def healthz(self) -> Answer:
        return json_answer(200, {"status": "alive", "workers": len(self.pids)})

    def readyz(self) -> Answer:
        """Ready while every worker is (each as a single bridge's /readyz says)."""
        reports = [self.readiness.read(index) for index in range(self.count)]
        known = [report for report in reports if report is not None]
        complete = len(known) == self.count
        body = {
            "ready": complete and not self.stopping and all(report["ready"] for report in known),
            "shutting_down": self.stopping,
            "kafka_reachable": complete and all(report["kafka_reachable"] for report in known),
            "spool_has_room": complete and all(report["spool_has_room"] for report in known),
            "spooled_records": sum(report["spooled_records"] for report in known),
            "workers": [
                {"worker": index, **(report or {"reported": False})} for index, report in enumerate(reports)
            ],
        }
        return readiness_answer(body)

    def scrape(self, registry: CollectorRegistry) -> Answer:
        """The workers' files as they last wrote them, with this process's own values (the worker count
        and restarts) written first."""
        metrics.flush_worker_files()
        return metrics_answer(generate_latest(registry))

    def ops_endpoints(self) -> OpsEndpoints:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(self.metrics_directory))  # type: ignore[no-untyped-call]
        registry.register(ProcessTreeCollector(lambda: list(self.pids)))
        return OpsEndpoints(
            {
                "/healthz": self.healthz,
                "/readyz": self.readyz,
                "/metrics": lambda: self.scrape(registry),
            }
        )


class ParentServer(Listener):
    """The operations listener in the parent, which also watches the workers. A signal stops the workers;
    the listener itself stops once they are gone (probes and scrapes are answered until then)."""

    def __init__(self, config: Any, sock: socket.socket, pool: WorkerPool) -> None:
        super().__init__(config, sock)
        self.pool = pool
        self._watch: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Not uvicorn's: it raises the signal again once the server stopped, and the parent must exit 0.
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        log.info("stopping the workers", extra={"signal": signal.Signals(sig).name})
        self.pool.stop()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._watch = asyncio.create_task(self._watch_workers(), name="workers")

    async def _watch_workers(self) -> None:
        pool = self.pool
        while True:
            pool.reap()
            if pool.stopping and not pool.pids:
                break
            if pool.stopping and pool.budget.remaining() == 0:
                await asyncio.sleep(KILL_MARGIN_SECONDS)
                pool.reap()
                pool.kill_remaining()
                while pool.pids:
                    pool.reap()
                    await asyncio.sleep(REAP_SECONDS)
                break
            await asyncio.sleep(REAP_SECONDS)
        self.should_exit = True


def run_workers(settings: Settings, public_sockets: list[socket.socket], ops_socket: socket.socket) -> int:
    """Serve with one worker process per webhook listener socket (bind_group) until a signal; the exit
    code."""
    directory = Path(settings.spool.path) / METRICS_DIRECTORY
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    metrics.use_worker_files(directory)
    # The parent serves no deliveries: only its own counters count, not gauges that workers report.
    mark_process_dead(os.getpid(), str(directory))  # type: ignore[no-untyped-call]
    pool = WorkerPool(settings, public_sockets, directory)
    server = settings.server
    parent = ParentServer(ops_config(pool.ops_endpoints(), server), ops_socket, pool)
    pool.parent_descriptors = lambda: _connection_descriptors(parent, ops_socket)
    log.info("starting workers", extra={"workers": pool.count, "setting": str(server.workers)})
    for index in range(pool.count):
        pool.start(index)
    parent.run()
    for sock in public_sockets:
        sock.close()
    return pool.exit_code


def _connection_descriptors(parent: ParentServer, ops_socket: socket.socket) -> list[int]:
    """The operations listener's socket and open connections, which a freshly forked worker closes (a
    copy held by a worker would keep a connection open after the parent closed it)."""
    found = [ops_socket.fileno()]
    for protocol in parent.server_state.connections:
        transport = getattr(protocol, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            found.append(sock.fileno())
    return found


def _run_worker(pool: WorkerPool, index: int) -> NoReturn:
    """The forked child: serve the webhook listener as worker `index` until SIGTERM; never returns."""
    code = EXIT_OK
    try:
        parent = os.getppid()
        _follow_parent(parent)
        os.setpgid(0, 0)
        for descriptor in pool.parent_descriptors():
            with contextlib.suppress(OSError):
                os.close(descriptor)
        own = pool.public_sockets[index]
        for sock in pool.public_sockets:
            if sock is not own:
                sock.close()
        _tag_log_records(index)
        settings = pool.settings
        # Before anything is built: while this worker lives no other process takes its records.
        hold(spool_directory(Path(settings.spool.path), index))
        role = WorkerRole(index, pool.count, pool.guard, pool.readiness.report)
        bridge = Bridge(settings, role)
        bridge.check_topics()
        server = settings.server
        listener = PublicServer(
            public_config(create_app(bridge), bridge.receiver, server, settings.sources),
            own,
            bridge,
            None,
        )
        heap.settle_after_startup()
        # uvicorn raises a caught signal again once it stopped; this process then ends below, with 0.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda sig, frame: None)
        listener.run()
    except ConfigError as exc:
        print(f"idaas-bridge: configuration error: {exc}", file=sys.stderr)
        code = EXIT_CONFIG
    except BaseException:
        log.exception("worker failed")
        code = EXIT_RUNTIME
    finally:
        _flush_metrics()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _flush_metrics() -> None:
    """A worker's last counts reach its files however it ends (short of SIGKILL): its /metrics are flushed
    every metrics.FLUSH_SECONDS only."""
    try:
        metrics.flush_worker_files()
    except Exception:
        log.exception("could not write the worker's last metric values")


def _follow_parent(parent: int) -> None:
    """SIGTERM to this worker when the parent dies (Linux), so no worker outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the prctl
        os._exit(EXIT_RUNTIME)


def _tag_log_records(index: int) -> None:
    """Every log line of a worker says which one (`"worker": <i>`)."""
    make = logging.getLogRecordFactory()

    def tagged(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.worker = index
        return record

    logging.setLogRecordFactory(tagged)
