"""The webhook endpoint: receive → authenticate → normalize → dedup → route → make durable → answer.

Status codes matter because IDaaS reacts to them: 2xx only once the event is durable; 401 for anything not
authenticated (nothing stored); 413 over the size limit; 503 only when nothing durable could be done (IDaaS
retries 5xx). An authenticated body that cannot be normalized is still accepted into the dead-letter topic:
a 4xx there would repeat forever and end in auto-disable.

Unauthenticated work never takes capacity from authenticated work. The RFC 9421 signature covers the
Content-Digest header, so the HMAC is checked from the headers alone: a request that fails is answered 401
before its body is read, and only requests whose signature verified read their body, in the
`limit_concurrency` slots. Requests that can only be authenticated once their body is read (the opt-in
legacy x-sha2-signature scheme) read it in a small separate pool (`unauthenticated_limit_concurrency`)
under a short deadline (`unauthenticated_body_timeout_seconds`), so slow bodies sent by anyone can fill
that pool at most.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from datetime import UTC, datetime
from typing import Final

from bridge import auth, metrics
from bridge.config import Settings, WebhookSettings
from bridge.dedup import DeliveryDedup
from bridge.errors import ReasonedError
from bridge.events.catalog import UNKNOWN_TYPE_LABEL, lookup
from bridge.events.envelope import Envelope, EnvelopeError, parse_envelope
from bridge.events.normalize import normalize
from bridge.guard import AutoDisableGuard
from bridge.http_message import (
    OVERLOADED,
    Answer,
    BodyTooLarge,
    ClientDisconnect,
    Request,
    json_answer,
    unavailable,
)
from bridge.logs import ThrottledLog
from bridge.metric_value import MetricValue
from bridge.publish.delivery import DurableDelivery, Unavailable
from bridge.routing import RecordTooLarge, Router

log = logging.getLogger(__name__)

#: Rejections are logged at INFO at most once per webhook, reason and this interval (the rest at DEBUG).
REJECTION_LOG_INTERVAL_SECONDS: Final = 60.0


#: Every header the receiver reads (lowercase); the HTTP protocol keeps no other.
READ_HEADERS: Final = frozenset(
    name.encode()
    for name in (*auth.SIGNATURE_HEADERS, "content-length", "host", "x-forwarded-proto", "x-forwarded-host")
)
WEBHOOK_PATH_PREFIX: Final = "/webhooks/"
#: The answers to anything but POST /webhooks/<name>. They also end the connection, so a scanner probing
#: paths gets no keep-alive to hold (an unknown webhook's 404 too).
NOT_SERVED: Final = json_answer(
    404, {"error": "not_found", "detail": "this port serves only POST /webhooks/<name>"}, close=True
)
ONLY_POST: Final = json_answer(
    405,
    {"error": "method_not_allowed", "detail": "webhooks take POST only"},
    [("Allow", "POST")],
    close=True,
)


def webhook_name(path: str) -> str | None:
    """The `{name}` of `/webhooks/{name}`: one non-empty path segment."""
    if not path.startswith(WEBHOOK_PATH_PREFIX):
        return None
    name = path[len(WEBHOOK_PATH_PREFIX) :]
    return name if name and "/" not in name else None


class Slots:
    """At most `limit` requests at once in one stage of the receiver."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    def take(self) -> bool:
        """Take a slot if one is free (then `give_back` it when done): a method pair, not a context
        manager, because a generator-based one cost about 1.5 µs per delivery."""
        if self._in_use >= self._limit:
            return False
        self._in_use += 1
        return True

    def give_back(self) -> None:
        self._in_use -= 1


class WebhookSeries:
    """One webhook's series that the receiver updates per delivery, each looked up once (`metrics.value_of`),
    so that an update is a native call rather than `labels()` and `inc()` in Python. As bounded as the
    labels: an answer's status code, an event type of the catalog (or "unknown") and a delivery status."""

    def __init__(self, webhook: str) -> None:
        self._webhook = webhook
        #: REQUEST_DURATION's.
        self.duration = metrics.histogram_values(metrics.REQUEST_DURATION.labels(webhook))
        self._responses: dict[int, MetricValue] = {}
        self._deliveries: dict[str, dict[str, MetricValue]] = {}

    def responses(self, status: int) -> MetricValue:
        """RESPONSES' for answers with `status`."""
        value = self._responses.get(status)
        if value is None:
            series = metrics.RESPONSES.labels(self._webhook, str(status))
            value = self._responses[status] = metrics.value_of(series)
        return value

    def deliveries(self, event_type: str, status: str) -> MetricValue:
        """DELIVERIES' for deliveries of `event_type` (a catalog type or "unknown") that ended in `status`."""
        by_type = self._deliveries.get(status)
        if by_type is None:
            by_type = self._deliveries[status] = {}
        value = by_type.get(event_type)
        if value is None:
            series = metrics.DELIVERIES.labels(self._webhook, event_type, status)
            value = by_type[event_type] = metrics.value_of(series)
        return value


class WebhookReceiver:
    """The public listener's endpoint (bridge/http_message.Endpoint)."""

    headers: Final = READ_HEADERS

    def __init__(
        self,
        settings: Settings,
        router: Router,
        delivery: DurableDelivery,
        dedup: DeliveryDedup[Answer],
        guard: AutoDisableGuard,
    ) -> None:
        self._settings = settings
        #: The configured webhooks by their path: a delivery's webhook in one look-up (`webhook_name`, a
        #: prefix test and a slice, only for the answers to anything else).
        self._paths = {WEBHOOK_PATH_PREFIX + hook.name: hook for hook in settings.webhooks}
        self._series = {hook.name: WebhookSeries(hook.name) for hook in settings.webhooks}
        self._router = router
        self._delivery = delivery
        self._dedup = dedup
        self._guard = guard
        self._signed_slots = Slots(settings.server.limit_concurrency)
        self._unsigned_slots = Slots(settings.server.unauthenticated_limit_concurrency)
        self._rejections = ThrottledLog(log, REJECTION_LOG_INTERVAL_SECONDS)
        for hook in settings.webhooks:  # exported as 0 from the start, so "no hang-ups" reads as 0
            metrics.CLIENT_DISCONNECTS.labels(webhook=hook.name)
        self._trusted = [
            ipaddress.ip_network(proxy, strict=False) for proxy in settings.server.trusted_proxies
        ]

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now (what a shutdown would cut short)."""
        return self._signed_slots.in_use + self._unsigned_slots.in_use

    async def handle(self, request: Request) -> Answer | None:
        """The answer to one delivery; None when the client hung up (nobody is listening)."""
        started = time.perf_counter()
        webhook = self._paths.get(request.path)
        if webhook is None or request.method != "POST":
            return self._not_a_delivery(request)
        name = webhook.name
        check = auth.verify_headers(
            auth.SignedHeaders(
                method=request.method,
                target_uri=self.target_uri(request, webhook),
                content_digest=request.joined("content-digest"),
                signature_input=request.joined("signature-input"),
                signature=request.joined("signature"),
                legacy_signature=request.header(auth.LEGACY_HEADER),
            ),
            webhook.tokens,
            time.time(),
            self._settings.signature.created_window_seconds,
            webhook.legacy_sha2_signature,
        )
        if isinstance(check, auth.AuthFailure):
            answer, well_formed = self._unauthorized(name, request, check), check.well_formed
        else:
            well_formed = True
            try:
                answer = await self._admit(request, name, check)
            except ClientDisconnect:
                metrics.CLIENT_DISCONNECTS.labels(webhook=name).inc()
                log.debug("client hung up before its body arrived", extra={"webhook": name, **peer(request)})
                self._guard.hang_up(name, well_formed)
                return None
        elapsed = time.perf_counter() - started
        series = self._series[name]
        series.duration.observe(elapsed)
        series.responses(answer.status).inc(1)
        self._guard.record(name, answer.status, elapsed, well_formed)
        return answer

    def _not_a_delivery(self, request: Request) -> Answer:
        """The answer to a request that is not a POST to a configured webhook."""
        name = webhook_name(request.path)
        if name is None:
            return NOT_SERVED
        if request.method != "POST":
            return ONLY_POST
        detail = f"no webhook named {name!r} is configured"
        return json_answer(404, {"error": "unknown_webhook", "detail": detail}, close=True)

    def target_uri(self, request: Request, webhook: WebhookSettings) -> str:
        """The URL IDaaS signed (RFC 9421 @target-uri): the configured public URL, else the request's."""
        if webhook.public_url:
            return webhook.public_url
        path = request.raw_path.decode("latin-1")
        query = request.query.decode("latin-1")
        suffix = f"{path}?{query}" if query else path
        if self._settings.server.public_base_url:
            return self._settings.server.public_base_url.rstrip("/") + suffix
        scheme = request.scheme
        host = request.header("host") or ""
        client = request.client_host
        if self._trusted and client is not None and self._is_trusted(client):
            forwarded_proto = request.header("x-forwarded-proto")
            forwarded_host = request.header("x-forwarded-host")
            if forwarded_proto is not None:
                scheme = forwarded_proto.split(",")[0].strip()
            if forwarded_host is not None:
                host = forwarded_host.split(",")[0].strip()
        return f"{scheme}://{host}{suffix}"

    def _is_trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    async def _admit(self, request: Request, webhook: str, check: auth.BodyCheck) -> Answer:
        """Read the body in the pool its authentication allows, verify it, then make it durable.

        A signed request holds one `limit_concurrency` slot throughout; a legacy one reads its body in the
        unauthenticated pool and takes a signed slot only once its body verified.
        """
        server = self._settings.server
        reading, deadline = (
            (self._signed_slots, server.body_read_timeout_seconds)
            if check.signed
            else (self._unsigned_slots, server.unauthenticated_body_timeout_seconds)
        )
        if not reading.take():
            return OVERLOADED
        try:
            body = await self._read_verified(request, webhook, check, deadline)
            if isinstance(body, Answer):
                return body
            if check.signed:
                return await self._accept(webhook, body)
        finally:
            reading.give_back()
        if not self._signed_slots.take():
            return OVERLOADED
        try:
            return await self._accept(webhook, body)
        finally:
            self._signed_slots.give_back()

    async def _read_verified(
        self, request: Request, webhook: str, check: auth.BodyCheck, deadline: float
    ) -> bytes | Answer:
        """The body, once it arrived in time, within the size limit and matching what the headers signed."""
        limit = self._settings.server.max_body_bytes
        try:
            if request.arrived:
                # Reading cannot wait, so no deadline: asyncio.timeout costs ~5 µs, a few % of a delivery.
                body = request.arrived_body(limit)
            else:
                # asyncio.timeout, not wait_for: wait_for runs the read in a task of its own (3.11).
                async with asyncio.timeout(deadline):
                    body = await request.body(limit)
        except BodyTooLarge:
            return json_answer(
                413, {"error": "body_too_large", "detail": f"bodies are limited to {limit} bytes"}
            )
        except TimeoutError:
            detail = f"the body did not arrive within {deadline} s"
            # RFC 9110 15.5.9: a 408 means the server stopped waiting, so it ends the connection rather
            # than holding it open for the keep-alive timeout on behalf of a client that is too slow.
            return json_answer(408, {"error": "body_timeout", "detail": detail}, close=True)
        failure = check.verify(body)
        if failure is not None:
            return self._unauthorized(webhook, request, failure)
        return body

    def _unauthorized(self, webhook: str, request: Request, failure: auth.AuthFailure) -> Answer:
        metrics.AUTH_FAILURES.labels(webhook=webhook, reason=failure.reason).inc()
        self._rejections.info(
            (webhook, failure.reason),
            "delivery rejected",
            {
                "webhook": webhook,
                "reason": failure.reason,
                "well_formed": failure.well_formed,
                **peer(request),
            },
        )
        document = {"error": "unauthorized", "reason": failure.reason, "detail": failure.detail}
        return json_answer(401, document)

    async def _accept(self, webhook: str, body: bytes) -> Answer:
        """Authenticated from here on: every path ends durable (2xx) or in a 503 that IDaaS retries."""
        received_at = datetime.now(UTC)
        try:
            envelope = parse_envelope(body)
        except EnvelopeError as exc:
            return await self._deadletter(webhook, body, exc, received_at)
        type_label = envelope.type if lookup(envelope.type) is not None else UNKNOWN_TYPE_LABEL
        claim = self._dedup.claim(envelope.id)
        if claim.duplicate:
            self._series[webhook].deliveries(type_label, "duplicate").inc(1)
            return json_answer(200, {"id": envelope.id, "status": "duplicate"})
        if claim.pending is not None:
            # Another copy is being made durable right now: its answer is this one's.
            answer = await asyncio.shield(claim.pending)
            self._series[webhook].deliveries(type_label, "duplicate").inc(1)
            return answer
        try:
            answer = await self._make_durable(webhook, body, envelope, type_label, received_at)
        except BaseException:
            # Cancelled or failed: copies waiting for this one get a 503 that IDaaS retries.
            interrupted = unavailable({"id": envelope.id, "error": "unavailable", "reason": "interrupted"})
            self._dedup.settle(envelope.id, interrupted, durable=False)
            raise
        self._dedup.settle(envelope.id, answer, durable=answer.status < 300)
        return answer

    async def _make_durable(
        self, webhook: str, body: bytes, envelope: Envelope, type_label: str, received_at: datetime
    ) -> Answer:
        event = normalize(envelope, webhook, received_at)
        try:
            record = self._router.route(event)
        except RecordTooLarge as too_large:
            # Its own name: compiled (mypyc), a name takes the class of its first handler in the function.
            return await self._deadletter(webhook, body, too_large, received_at)
        try:
            status = await self._delivery.submit(record)
        except Unavailable as exc:
            self._series[webhook].deliveries(type_label, "unavailable").inc(1)
            log.warning("delivery not durable", extra={"webhook": webhook, "reason": exc.reason})
            return unavailable({"id": envelope.id, "error": "unavailable", "reason": exc.reason})
        self._series[webhook].deliveries(type_label, status).inc(1)
        if event.category == "authentication":
            resource = metrics.resource_label(event.resource)
            metrics.AUTHENTICATIONS.labels(event.outcome, resource).inc()
        return json_answer(200 if status == "published" else 202, {"id": envelope.id, "status": status})

    async def _deadletter(
        self, webhook: str, body: bytes, error: ReasonedError, received_at: datetime
    ) -> Answer:
        record = self._router.deadletter(body, str(error), webhook, received_at)
        try:
            await self._delivery.submit(record)
        except Unavailable as exc:
            self._series[webhook].deliveries(UNKNOWN_TYPE_LABEL, "unavailable").inc(1)
            return unavailable({"error": "unavailable", "reason": exc.reason})
        metrics.DEADLETTERS.labels(webhook=webhook, reason=error.reason).inc()
        self._series[webhook].deliveries(UNKNOWN_TYPE_LABEL, "deadletter").inc(1)
        return json_answer(202, {"status": "deadlettered", "reason": str(error)})


def peer(request: Request) -> dict[str, str]:
    """The client's address for a log line (the proxy's, behind an ingress)."""
    client = request.client_host
    return {"peer": client} if client is not None else {}
