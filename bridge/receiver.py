"""The webhook endpoint: receive → authenticate → normalize → dedup → route → make durable → answer.

Status codes matter because IDaaS reacts to them: 2xx only once the event is durable; 401 for anything not
authenticated (nothing stored); 413 over the size limit; 503 only when nothing durable could be done (IDaaS
retries 5xx). An authenticated body that cannot be normalized is still accepted into the dead-letter topic:
a 4xx there would repeat forever and end in auto-disable.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from datetime import UTC, datetime
from typing import Final

import orjson
from starlette.requests import Request
from starlette.responses import Response

from bridge import auth, metrics
from bridge.config import Settings, WebhookSettings
from bridge.dedup import DeliveryDedup
from bridge.errors import ReasonedError
from bridge.events.catalog import UNKNOWN_TYPE_LABEL, lookup
from bridge.events.envelope import EnvelopeError, parse_envelope
from bridge.events.normalize import normalize
from bridge.guard import AutoDisableGuard
from bridge.publish.delivery import DurableDelivery, Unavailable
from bridge.routing import RecordTooLarge, Router

log = logging.getLogger(__name__)

JSON: Final = "application/json"
RETRY_AFTER_SECONDS: Final = "2"


class BodyTooLarge(Exception):
    pass


# RFC 9110 15.5.9: a 408 means the server stopped waiting, so it ends the connection rather than holding
# it open for the keep-alive timeout on behalf of a client that is too slow.
CLOSE_CONNECTION = {"connection": "close"}


def _json(status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


class WebhookReceiver:
    def __init__(
        self,
        settings: Settings,
        router: Router,
        delivery: DurableDelivery,
        dedup: DeliveryDedup,
        guard: AutoDisableGuard,
    ) -> None:
        self._settings = settings
        self._webhooks = {hook.name: hook for hook in settings.webhooks}
        self._router = router
        self._delivery = delivery
        self._dedup = dedup
        self._guard = guard
        self._in_flight = 0
        self._trusted = [
            ipaddress.ip_network(proxy, strict=False) for proxy in settings.server.trusted_proxies
        ]

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        name = request.path_params["name"]
        webhook = self._webhooks.get(name)
        if webhook is None:
            return _json(
                404, {"error": "unknown_webhook", "detail": f"no webhook named {name!r} is configured"}
            )
        if self._in_flight >= self._settings.server.limit_concurrency:
            response = _json(
                503,
                {"error": "overloaded", "detail": "too many deliveries in progress; retry shortly"},
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        else:
            self._in_flight += 1
            try:
                response = await self._handle(request, webhook)
            finally:
                self._in_flight -= 1
        elapsed = time.perf_counter() - started
        metrics.REQUEST_DURATION.labels(webhook=name).observe(elapsed)
        metrics.RESPONSES.labels(webhook=name, code=str(response.status_code)).inc()
        self._guard.record(name, response.status_code, elapsed)
        return response

    def target_uri(self, request: Request, webhook: WebhookSettings) -> str:
        """The URL IDaaS signed (RFC 9421 @target-uri): the configured public URL, else the request's."""
        if webhook.public_url:
            return webhook.public_url
        path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        query = request.scope.get("query_string", b"").decode("latin-1")
        suffix = f"{path}?{query}" if query else path
        if self._settings.server.public_base_url:
            return self._settings.server.public_base_url.rstrip("/") + suffix
        scheme = request.url.scheme
        host = request.headers.get("host", "")
        if self._trusted and request.client is not None and self._is_trusted(request.client.host):
            scheme = request.headers.get("x-forwarded-proto", scheme).split(",")[0].strip()
            host = request.headers.get("x-forwarded-host", host).split(",")[0].strip()
        return f"{scheme}://{host}{suffix}"

    def _is_trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    async def _read_body(self, request: Request) -> bytes:
        limit = self._settings.server.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def _handle(self, request: Request, webhook: WebhookSettings) -> Response:
        server = self._settings.server
        try:
            body = await asyncio.wait_for(self._read_body(request), server.body_read_timeout_seconds)
        except BodyTooLarge:
            detail = f"bodies are limited to {server.max_body_bytes} bytes"
            return _json(413, {"error": "body_too_large", "detail": detail})
        except TimeoutError:
            detail = f"the body did not arrive within {server.body_read_timeout_seconds} s"
            return _json(408, {"error": "body_timeout", "detail": detail}, CLOSE_CONNECTION)
        headers = request.headers
        failure = auth.verify(
            auth.SignedRequest(
                method=request.method,
                target_uri=self.target_uri(request, webhook),
                body=body,
                content_digest=", ".join(headers.getlist("content-digest")) or None,
                signature_input=", ".join(headers.getlist("signature-input")) or None,
                signature=", ".join(headers.getlist("signature")) or None,
                legacy_signature=headers.get(auth.LEGACY_HEADER),
            ),
            webhook.tokens,
            now=time.time(),
            window=self._settings.signature.created_window_seconds,
            legacy=webhook.legacy_sha2_signature,
        )
        if failure is not None:
            metrics.AUTH_FAILURES.labels(webhook=webhook.name, reason=failure.reason).inc()
            log.info("delivery rejected", extra={"webhook": webhook.name, "reason": failure.reason})
            return _json(401, {"error": "unauthorized", "reason": failure.reason, "detail": failure.detail})
        return await self._accept(webhook.name, body)

    async def _accept(self, webhook: str, body: bytes) -> Response:
        """Authenticated from here on: every path ends durable (2xx) or in a 503 that IDaaS retries."""
        received_at = datetime.now(UTC)
        try:
            envelope = parse_envelope(body)
        except EnvelopeError as exc:
            return await self._deadletter(webhook, body, exc, received_at)
        type_label = envelope.type if lookup(envelope.type) is not None else UNKNOWN_TYPE_LABEL
        if self._dedup.seen(envelope.id):
            metrics.DELIVERIES.labels(webhook=webhook, event_type=type_label, status="duplicate").inc()
            return _json(200, {"id": envelope.id, "status": "duplicate"})
        event = normalize(envelope, webhook, received_at)
        try:
            record = self._router.route(event)
        except RecordTooLarge as exc:
            return await self._deadletter(webhook, body, exc, received_at)
        try:
            status = await self._delivery.submit(record)
        except Unavailable as exc:
            metrics.DELIVERIES.labels(webhook=webhook, event_type=type_label, status="unavailable").inc()
            log.warning("delivery not durable", extra={"webhook": webhook, "reason": exc.reason})
            return _json(
                503,
                {"id": envelope.id, "error": "unavailable", "reason": exc.reason},
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        self._dedup.remember(envelope.id)
        metrics.DELIVERIES.labels(webhook=webhook, event_type=type_label, status=status).inc()
        if event.category == "authentication":
            metrics.AUTHENTICATIONS.labels(outcome=event.outcome, resource=event.resource or "").inc()
        return _json(200 if status == "published" else 202, {"id": envelope.id, "status": status})

    async def _deadletter(
        self, webhook: str, body: bytes, error: ReasonedError, received_at: datetime
    ) -> Response:
        record = self._router.deadletter(body, str(error), webhook, received_at)
        try:
            await self._delivery.submit(record)
        except Unavailable as exc:
            metrics.DELIVERIES.labels(
                webhook=webhook, event_type=UNKNOWN_TYPE_LABEL, status="unavailable"
            ).inc()
            return _json(
                503,
                {"error": "unavailable", "reason": exc.reason},
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        metrics.DEADLETTERS.labels(webhook=webhook, reason=error.reason).inc()
        metrics.DELIVERIES.labels(webhook=webhook, event_type=UNKNOWN_TYPE_LABEL, status="deadletter").inc()
        return _json(202, {"status": "deadlettered", "reason": str(error)})
