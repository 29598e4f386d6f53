"""A small async client for the five IDaaS Administration API operations the bridge uses.

Authentication (documented by Entrust): `POST /api/web/v1/adminapi/authenticate` with the application id and
shared secret returns a token and its `expirationTime`; the raw token goes in `Authorization` (no `Bearer`,
as the public integrations send it). The token is reused until shortly before it expires, and fetched once
more when an answer is 401 (a token revoked or expired early).

429, 5xx and transport failures are retried with exponential back-off (honouring `Retry-After`); anything
else is an answer. Requests run in a worker thread with `http.client` (the project has no async HTTP client
dependency, and these are a few requests a minute off the hot path), each bounded by a socket timeout.

Nothing secret is logged or put in an error: neither the shared secret, nor a token, nor a response body.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import orjson

from bridge import metrics
from bridge.config import ADMIN_API_SECRET_ENV, AdminApiSettings, ConfigError
from bridge.errors import ReasonedError

log = logging.getLogger(__name__)

AUTHENTICATE_PATH: Final = "/api/web/v1/adminapi/authenticate"
WEBHOOKS_PATH: Final = "/api/web/v1/webhooks"
SIEM_AUDIT_PATH: Final = "/api/web/v2/reports/auditeventspaged/siem"
#: Fetch a new token this long before the old one expires (or a quarter of its lifetime, if shorter), so a
#: request never leaves with a token that expires on the way.
TOKEN_REFRESH_MARGIN_SECONDS: Final = 60.0
#: Attempts per request when the answer is 429, 5xx or no answer at all.
ATTEMPTS: Final = 4
FIRST_BACKOFF_SECONDS: Final = 1.0
MAX_BACKOFF_SECONDS: Final = 60.0
#: A larger answer is not one of the documented ones (an audit page holds at most 100 events).
MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
RETRYABLE_STATUS: Final = frozenset({429, 500, 502, 503, 504})


class AdminApiError(ReasonedError):
    """An Admin API call that did not succeed. `reason` is one of: unauthorized (the application id or
    secret was refused), forbidden (the role lacks a permission), not_found, rejected (another 4xx),
    unavailable (429/5xx/no answer after every attempt), bad_response (not the documented shape)."""

    def __init__(self, reason: str, detail: str, status: int | None = None) -> None:
        super().__init__(reason, detail)
        self.status = status


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    retry_after_seconds: float | None


def require_configured(settings: AdminApiSettings, why: str) -> None:
    """For a command that needs the Admin API: a ConfigError saying `why` when admin_api is not set."""
    if not settings.enabled:
        raise ConfigError(f"admin_api.hostname is empty: {why}; set admin_api (docs/operations.md)")


def parse_time(value: str) -> datetime:
    """An Admin API timestamp (ISO-8601; the spec's examples end in Z, some omit the zone: UTC)."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class AdminApiClient:
    """One application's session with one tenant; safe to share between tasks (one token at a time)."""

    def __init__(
        self,
        settings: AdminApiSettings,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        first_backoff_seconds: float = FIRST_BACKOFF_SECONDS,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._first_backoff = first_backoff_seconds
        self._context = ssl.create_default_context(cafile=settings.ca_file or None)
        self._token: str | None = None
        self._refresh_at = 0.0
        self._token_lock = asyncio.Lock()

    # --- the operations ---------------------------------------------------------------------------

    async def list_webhooks(self) -> list[dict[str, Any]]:
        result = await self._call("list_webhooks", "GET", WEBHOOKS_PATH)
        if not isinstance(result, list) or not all(isinstance(hook, dict) for hook in result):
            raise AdminApiError("bad_response", "list_webhooks: expected a JSON array of webhooks")
        return result

    async def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        return self._object("get_webhook", await self._call("get_webhook", "GET", self._hook(webhook_id)))

    async def update_webhook(self, webhook_id: str, parms: dict[str, Any]) -> dict[str, Any]:
        answer = await self._call("update_webhook", "PUT", self._hook(webhook_id), parms)
        return self._object("update_webhook", answer)

    async def test_webhook(self, webhook_id: str) -> None:
        """Ask IDaaS to send its dummy payload to the webhook's registered callback URL."""
        await self._call("test_webhook", "POST", f"{WEBHOOKS_PATH}/test/{quote(webhook_id, safe='')}", {})

    async def audit_events_page(self, search: dict[str, Any]) -> dict[str, Any]:
        """One page of `POST .../auditeventspaged/siem` (ascending event time); `search` is a SearchParms."""
        page = self._object("audit_events", await self._call("audit_events", "POST", SIEM_AUDIT_PATH, search))
        if not isinstance(page.get("results"), list):
            raise AdminApiError("bad_response", "audit_events: the page has no results array")
        return page

    # --- token ------------------------------------------------------------------------------------

    async def _current_token(self) -> str:
        async with self._token_lock:
            if self._token is None or self._clock() >= self._refresh_at:
                await self._authenticate()
            assert self._token is not None
            return self._token

    async def _authenticate(self) -> None:
        body = {
            "applicationId": self.settings.application_id,
            "sharedSecret": self.settings.shared_secret,
            "enableWebSession": False,
        }
        answer = await self._send_with_backoff("authenticate", "POST", AUTHENTICATE_PATH, body, None)
        if answer.status in (400, 401, 403):
            raise AdminApiError(
                "unauthorized",
                f"the Admin API refused application {self.settings.application_id!r} on "
                f"{self.settings.hostname} (HTTP {answer.status}): check admin_api.application_id and "
                f"{ADMIN_API_SECRET_ENV}",
                answer.status,
            )
        result = self._object("authenticate", self._decode("authenticate", answer))
        token, expires = result.get("authToken"), result.get("expirationTime")
        if not isinstance(token, str) or not token or not isinstance(expires, str):
            raise AdminApiError("bad_response", "authenticate: no authToken or expirationTime in the answer")
        try:
            expires_at = parse_time(expires).timestamp()
        except ValueError:
            raise AdminApiError("bad_response", "authenticate: expirationTime is not a timestamp") from None
        now = self._clock()
        margin = min(TOKEN_REFRESH_MARGIN_SECONDS, max(0.0, expires_at - now) / 4)
        self._token, self._refresh_at = token, expires_at - margin
        log.info("admin api token obtained", extra={"expires_in_seconds": round(expires_at - now)})

    def _forget_token(self, token: str) -> None:
        if self._token == token:
            self._token = None

    # --- requests ---------------------------------------------------------------------------------

    async def _call(self, operation: str, method: str, path: str, body: Any = None) -> Any:
        token = await self._current_token()
        answer = await self._send_with_backoff(operation, method, path, body, token)
        if answer.status == 401:
            log.info("admin api answered 401; authenticating again", extra={"operation": operation})
            self._forget_token(token)
            answer = await self._send_with_backoff(operation, method, path, body, await self._current_token())
        return self._decode(operation, answer)

    def _decode(self, operation: str, answer: Answer) -> Any:
        if 200 <= answer.status < 300:
            if not answer.body:
                return None
            try:
                return orjson.loads(answer.body)
            except orjson.JSONDecodeError:
                raise AdminApiError("bad_response", f"{operation}: the answer is not JSON") from None
        reason = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(answer.status, "rejected")
        hint = {
            "unauthorized": f"check admin_api.application_id and {ADMIN_API_SECRET_ENV}",
            "forbidden": "the application's role lacks the permission this needs (docs/operations.md)",
        }.get(reason, "see the Admin API documentation for this operation")
        raise AdminApiError(reason, f"{operation}: HTTP {answer.status} ({hint})", answer.status)

    @staticmethod
    def _object(operation: str, result: Any) -> dict[str, Any]:
        if not isinstance(result, dict):
            raise AdminApiError("bad_response", f"{operation}: expected a JSON object")
        return result

    @staticmethod
    def _hook(webhook_id: str) -> str:
        return f"{WEBHOOKS_PATH}/{quote(webhook_id, safe='')}"

    async def _send_with_backoff(
        self, operation: str, method: str, path: str, body: Any, token: str | None
    ) -> Answer:
        payload = None if body is None else orjson.dumps(body)
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = token
        delay = self._first_backoff
        for attempt in range(1, ATTEMPTS + 1):
            failure: str
            try:
                answer = await asyncio.to_thread(self._send, method, path, payload, headers)
            except (OSError, http.client.HTTPException) as exc:
                metrics.ADMIN_API_REQUESTS.labels(operation=operation, code="error").inc()
                failure, wait = f"no answer ({type(exc).__name__})", delay
            else:
                metrics.ADMIN_API_REQUESTS.labels(operation=operation, code=str(answer.status)).inc()
                if answer.status not in RETRYABLE_STATUS:
                    return answer
                failure = f"HTTP {answer.status}"
                wait = min(answer.retry_after_seconds or delay, MAX_BACKOFF_SECONDS)
            if attempt == ATTEMPTS:
                break
            log.warning(
                "admin api request failed; retrying",
                extra={"operation": operation, "failure": failure, "attempt": attempt, "retry_in": wait},
            )
            await self._sleep(wait)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
        raise AdminApiError(
            "unavailable", f"{operation}: {failure} from {self.settings.hostname} after {ATTEMPTS} attempts"
        )

    def _send(self, method: str, path: str, payload: bytes | None, headers: dict[str, str]) -> Answer:
        connection = http.client.HTTPSConnection(
            self.settings.hostname, context=self._context, timeout=self.settings.request_timeout_seconds
        )
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            body = response.read(MAX_RESPONSE_BYTES + 1)
            if len(body) > MAX_RESPONSE_BYTES:
                raise http.client.HTTPException(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
            return Answer(response.status, body, _retry_after(response.getheader("Retry-After")))
        finally:
            connection.close()
