"""The Bridge: everything a running bridge holds, the one owner of its lifecycle (the lifespan, which uvicorn
runs through a Starlette application), and the endpoints of its two listeners."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from confluent_kafka import KafkaException
from prometheus_client import generate_latest
from starlette.applications import Starlette

from bridge import metrics
from bridge.adminapi.client import AdminApiClient
from bridge.adminapi.recovery import AutoBackfill
from bridge.adminapi.reenable import ReEnabler
from bridge.adminapi.watcher import WebhookWatcher
from bridge.config import ConfigError, Settings
from bridge.dedup import DeliveryDedup
from bridge.guard import AutoDisableGuard, GuardState
from bridge.http_message import Answer, json_answer
from bridge.ops_endpoints import OpsEndpoints, metrics_answer, readiness_answer
from bridge.publish.delivery import REPORT_MARGIN_SECONDS, DurableDelivery
from bridge.publish.drainer import Drainer
from bridge.publish.kafka import KafkaPublisher, retention_problem, size_problem, topic_limits
from bridge.publish.rejected import RejectedRecords
from bridge.publish.spool import Spool
from bridge.publish.stranded import hold, spool_directory, take_over
from bridge.receiver import WebhookReceiver
from bridge.routing import Router
from bridge.shutdown import ShutdownBudget

log = logging.getLogger(__name__)

#: How long the drainer's producer keeps retrying one spooled record before the drainer backs off.
DRAIN_MESSAGE_TIMEOUT_SECONDS: Final = 30.0
#: How often a worker reports its readiness to the serving process.
READINESS_REPORT_SECONDS: Final = 0.2


@dataclass(frozen=True)
class WorkerRole:
    """What a worker process (server.workers above 1) gets from the serving process: its number, the
    count, the failure streaks every worker counts together, and where to report its readiness."""

    index: int
    count: int
    guard: GuardState
    report_readiness: Callable[[int, Mapping[str, Any]], None]


class Bridge:
    """Everything a running bridge holds, built once from the settings; `worker` for one of several
    worker processes (None: the single process)."""

    def __init__(self, settings: Settings, worker: WorkerRole | None = None) -> None:
        self.settings = settings
        self.worker = worker
        #: This process's worker number (None: the single process) and how many serve the listener.
        self.worker_index = worker.index if worker else None
        self.worker_count = worker.count if worker else 1
        kafka = settings.kafka
        self.publisher = KafkaPublisher(kafka, kafka.ack_deadline_seconds, "receiver", export_statistics=True)
        self.drain_publisher = KafkaPublisher(kafka, DRAIN_MESSAGE_TIMEOUT_SECONDS, "drainer")
        root = Path(settings.spool.path)
        #: Workers share spool.max_bytes (the volume is sized for it), each in its own directory.
        self.spool = Spool(
            spool_directory(root, self.worker_index),
            settings.spool.max_bytes // self.worker_count,
            settings.spool.segment_bytes,
        )
        self.rejected = RejectedRecords(root)
        self.drainer = Drainer(
            self.spool,
            self.drain_publisher,
            self.rejected,
            [topic.name for topic in kafka.topics.values()],
            ack_wait=DRAIN_MESSAGE_TIMEOUT_SECONDS + REPORT_MARGIN_SECONDS,
        )
        self.router = Router(kafka)
        for topic in kafka.topics.values():
            for result in metrics.KAFKA_RESULTS:
                metrics.KAFKA_MESSAGES.labels(topic=topic.name, result=result)
            metrics.SPOOL_REJECTED.labels(topic=topic.name)
        self.guard = AutoDisableGuard(
            [hook.name for hook in settings.webhooks], state=worker.guard if worker else None
        )
        self.receiver = WebhookReceiver(
            settings,
            self.router,
            DurableDelivery(self.publisher, self.spool, kafka.ack_deadline_seconds, settings.spool.ack_mode),
            DeliveryDedup[Answer](settings.dedup.ttl_seconds, settings.dedup.max_entries),
            self.guard,
        )
        #: The automatic backfill after a recovery and of the bridge's own downtime; set by _watcher.
        self.recovery: AutoBackfill | None = None
        #: Off (None) unless admin_api is configured; reads the webhooks' state from IDaaS (one worker does).
        watching = settings.admin_api.enabled and (worker is None or worker.index == 0)
        self.watcher = self._watcher(settings) if watching else None
        self._background: list[asyncio.Task[None]] = []
        self.shutting_down = False
        self.shutdown = ShutdownBudget(settings.server.shutdown_grace_seconds)

    def _watcher(self, settings: Settings) -> WebhookWatcher:
        client = AdminApiClient(settings.admin_api)
        reenabler = (
            ReEnabler(settings.admin_api, client, self.guard, self.healthy)
            if settings.admin_api.reenable
            else None
        )
        # Backfills publish through the drainer's producer: it retries for longer than the receiver's, and
        # its queue is not the one deliveries wait on.
        self.recovery = (
            AutoBackfill(settings, client, self.drain_publisher, self.guard)
            if settings.admin_api.backfill_automatic
            else None
        )
        return WebhookWatcher(settings, client, self.guard, reenabler=reenabler, recovery=self.recovery)

    def healthy(self) -> bool:
        """Whether deliveries are made durable now the normal way: Kafka answers and the spool has room
        (the condition for re-enabling a webhook: a degraded bridge would walk it straight back into
        auto-disable)."""
        return not self.shutting_down and self.publisher.up and not self.spool.full

    def check_topics(self) -> None:
        """Fail at start-up, not at the first event, when Kafka answers but a configured topic is missing."""
        try:
            existing = self.publisher.list_topics_blocking()
        except KafkaException as exc:
            log.warning("kafka not reachable at start-up; continuing", extra={"error": str(exc)})
            return
        missing = [
            self.settings.sources.name(setting, name)
            for setting, name in self.settings.topic_settings().items()
            if name not in existing
        ]
        if missing:
            raise ConfigError(
                f"Kafka topic(s) {'; '.join(missing)} do not exist on "
                f"{self.settings.kafka.bootstrap_servers}: create them (idaas-bridge topics --config ...) or "
                "correct those settings"
            )
        try:
            limits = topic_limits(self.settings.kafka)
        except KafkaException as exc:
            log.warning("could not read the topics' configuration", extra={"error": str(exc)})
            return
        for topic, limit in sorted(limits.items()):
            too_small = size_problem(topic, limit, self.settings.kafka, str(self.rejected.path))
            if too_small is not None:
                log.warning(too_small, extra={"topic": topic, "max_message_bytes": limit.max_message_bytes})
            short_lived = retention_problem(topic, limit)
            if short_lived is not None:
                log.warning(short_lived, extra={"topic": topic, "retention_ms": limit.retention_ms})

    def healthz(self) -> Answer:
        return json_answer(200, {"status": "alive"})

    def readyz(self) -> Answer:
        """Ready while deliveries can be made durable: Kafka answers, or the spool has room.

        Going unready just because Kafka is down would take every pod out of the Service, turn
        deliveries into connection errors and walk the webhook into auto-disable. Answered from cached
        state only (librdkafka's statistics, the spool's counters): a probe never waits for Kafka or for
        the spool's disk, so a flood of probes cannot slow a delivery.
        """
        return readiness_answer(self.readiness())

    def readiness(self) -> dict[str, Any]:
        kafka_up = self.publisher.up
        spool_room = not self.spool.full
        return {
            "ready": not self.shutting_down and (kafka_up or spool_room),
            "shutting_down": self.shutting_down,
            "kafka_reachable": kafka_up,
            "spool_has_room": spool_room,
            "spooled_records": self.spool.pending_records,
        }

    async def _report_readiness(self, worker: WorkerRole) -> None:
        """A worker's readiness, for the serving process's /readyz (cached state, as /readyz reads it)."""
        while True:
            worker.report_readiness(worker.index, self.readiness())
            await asyncio.sleep(READINESS_REPORT_SECONDS)

    def metrics(self) -> Answer:
        return metrics_answer(generate_latest())

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.publisher.start()
        self.drain_publisher.start()
        worker = self.worker
        root = Path(self.settings.spool.path)
        if worker is not None:  # no other process takes this worker's records while it lives
            await asyncio.to_thread(hold, self.spool.directory)
        await asyncio.to_thread(take_over, root, self.worker_count, self.worker_index)
        await self.spool.open()
        self.rejected.publish_gauge()
        self.drainer.start()
        if self.recovery is not None:
            await self.recovery.load()  # before the watcher's first poll: it may report a recovery
            self._background.append(asyncio.create_task(self.recovery.run(), name="auto-backfill"))
        if self.watcher is not None:
            self._background.append(asyncio.create_task(self.watcher.run(), name="webhook-watcher"))
        if self.watcher is not None and worker is not None:
            self._background.append(asyncio.create_task(self.guard.relay_warnings(), name="warning-relay"))
        if worker is not None:
            self._background.append(asyncio.create_task(self._report_readiness(worker), name="readiness"))
            self._background.append(asyncio.create_task(metrics.flush_periodically(), name="metrics-flush"))
        log.info(
            "bridge started",
            extra={
                "webhooks": [hook.name for hook in self.settings.webhooks],
                "kafka": self.settings.kafka.bootstrap_servers,
            },
        )
        try:
            yield
        finally:
            await self._shut_down()

    def begin_shutdown(self) -> None:
        """SIGTERM: unready at once, and the shutdown budget starts now (uvicorn then stops accepting
        and waits for in-flight requests, within the same budget)."""
        self.shutting_down = True
        self.shutdown.start()
        if self.recovery is not None:  # the last moment known serving: the next start backfills from it
            self.recovery.stopping()
        if self.worker is not None:
            self.worker.report_readiness(self.worker.index, self.readiness())

    async def _shut_down(self) -> None:
        """The lifespan's phases, in order, within what the in-flight requests left of the budget. The
        event loop never blocks: librdkafka's flushes run in threads, both at once."""
        self.begin_shutdown()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        budget = self.shutdown
        budget.phase_done("requests", requests=self.receiver.in_flight)
        await self.drainer.stop(budget.remaining(), kafka_up=lambda: self.publisher.up)
        budget.phase_done("drain", spooled_records=self.spool.pending_records)
        await self.spool.close(budget.remaining())
        budget.phase_done("spool")
        left = await asyncio.gather(
            asyncio.to_thread(self.publisher.close, budget.remaining()),
            asyncio.to_thread(self.drain_publisher.close, budget.remaining()),
        )
        budget.phase_done("flush", unacknowledged_messages=sum(left))
        log.info(
            "bridge stopped",
            extra={
                "spooled_records_left": self.spool.pending_records,
                "unacknowledged_messages": sum(left),
                "budget_left_seconds": round(budget.remaining(), 3),
            },
        )


def create_app(bridge: Bridge) -> Starlette:
    """What uvicorn runs the bridge's lifespan through, on the public listener; requests never reach it
    (the listener's protocol hands them to the receiver: bridge/http_protocol.py)."""
    return Starlette(lifespan=bridge.lifespan)


def create_ops_endpoints(bridge: Bridge) -> OpsEndpoints:
    """The operations listener's endpoint: probes and metrics, never reachable from the webhook port."""
    return OpsEndpoints({"/healthz": bridge.healthz, "/readyz": bridge.readyz, "/metrics": bridge.metrics})
