"""The Starlette application: routes, and the one owner of the bridge's lifecycle (the lifespan)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from confluent_kafka import KafkaException
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.config import ConfigError, Settings
from bridge.dedup import DeliveryDedup
from bridge.guard import AutoDisableGuard
from bridge.publish.delivery import KafkaDelivery
from bridge.publish.kafka import KafkaPublisher
from bridge.receiver import WebhookReceiver
from bridge.routing import Router

log = logging.getLogger(__name__)


class Bridge:
    """Everything a running bridge holds, built once from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.publisher = KafkaPublisher(settings.kafka)
        self.router = Router(settings.kafka.topics)
        self.receiver = WebhookReceiver(
            settings,
            self.router,
            KafkaDelivery(self.publisher, settings.kafka.ack_deadline_seconds),
            DeliveryDedup(settings.dedup.ttl_seconds, settings.dedup.max_entries),
            AutoDisableGuard([hook.name for hook in settings.webhooks]),
        )
        self.shutting_down = False

    def check_topics(self) -> None:
        """Fail at start-up, not at the first event, when Kafka answers but a configured topic is missing."""
        try:
            existing = self.publisher.list_topics_blocking()
        except KafkaException as exc:
            log.warning("kafka not reachable at start-up; continuing", extra={"error": str(exc)})
            return
        missing = sorted(
            topic.name for topic in self.settings.kafka.topics.values() if topic.name not in existing
        )
        if missing:
            raise ConfigError(
                f"Kafka topic(s) {', '.join(missing)} do not exist on "
                f"{self.settings.kafka.bootstrap_servers}: create them (idaas-bridge topics --config ...) "
                "or fix kafka.topics"
            )

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(self, request: Request) -> Response:
        if self.shutting_down:
            return JSONResponse({"ready": False, "reason": "shutting down"}, status_code=503)
        if not await self.publisher.reachable():
            return JSONResponse({"ready": False, "reason": "kafka unreachable"}, status_code=503)
        return JSONResponse({"ready": True})

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.publisher.start()
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
            self.shutting_down = True
            remaining = self.publisher.close(self.settings.server.shutdown_grace_seconds)
            log.info("bridge stopped", extra={"undelivered_messages": remaining})


def create_app(bridge: Bridge) -> Starlette:
    return Starlette(
        routes=[
            Route("/webhooks/{name}", bridge.receiver.handle, methods=["POST"]),
            Route("/healthz", bridge.healthz, methods=["GET"]),
            Route("/readyz", bridge.readyz, methods=["GET"]),
            Route("/metrics", bridge.metrics, methods=["GET"]),
        ],
        lifespan=bridge.lifespan,
    )
