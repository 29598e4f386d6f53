"""A fake IDaaS Administration API: a Starlette app served over TLS on loopback, for the client, the
watcher, re-enable and backfill tests (no tenant is reachable from our machines).

Every request body it reads and every response body it sends is validated against the vendor's schemas
(tests/fixtures/idaas_admin_api_schemas.json, a trimmed copy of the OpenAPI components with its source), so
the fake cannot drift from the contract: a response that breaks it fails the test with a 500 and the error.

Besides the documented behaviour it models what a test needs to provoke: token expiry (its own clock can be
advanced), revoked tokens, injected 429/5xx answers and slow answers per operation, late audit events (any
event can be added at any time), and the webhook test call (a hook the test sets sends the dummy delivery).
Loaded as a pytest plugin from tests/conftest.py (the `fake_admin_api` fixture).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # ships no type information; no stubs installed
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.adminapi.client import parse_time
from bridge.config import AdminApiSettings

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = json.loads((ROOT / "tests/fixtures/idaas_admin_api_schemas.json").read_text(encoding="utf-8"))
APPLICATION_ID = "d3737e0f-4d8e-431c-b1d8-cd17ad4d633d"
SHARED_SECRET = "fake-shared-secret-0123456789abcdef"


def validate(schema_name: str, document: Any) -> None:
    """Raise jsonschema.ValidationError unless `document` matches the named spec component."""
    jsonschema.validate(
        document,
        {"$ref": f"#/components/schemas/{schema_name}", "components": SCHEMAS["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Injected:
    status: int
    retry_after: str | None = None
    delay_seconds: float = 0.0


@dataclass
class FakeAdminApi:
    application_id: str = APPLICATION_ID
    shared_secret: str = SHARED_SECRET
    token_lifetime_seconds: float = 900.0
    clock_offset: float = 0.0
    tokens: dict[str, float] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit_events: list[dict[str, Any]] = field(default_factory=list)
    #: operation -> answers to give before the real one (status, Retry-After, delay)
    injected: dict[str, list[Injected]] = field(default_factory=dict)
    #: (operation, Authorization header) of every request, in order
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    #: Called with the webhook when POST /webhooks/test/{id} arrives (e.g. to send the dummy delivery).
    on_test: Callable[[dict[str, Any]], None] | None = None
    tests_sent: list[str] = field(default_factory=list)
    #: Bodies of the PUTs received, to check what a client sent.
    updates: list[dict[str, Any]] = field(default_factory=list)
    #: Bodies of the audit page requests received (SearchParms), in order.
    searches: list[dict[str, Any]] = field(default_factory=list)
    _cursors: dict[str, tuple[str, str | None, int, int]] = field(default_factory=dict)

    # --- the test's controls ----------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        self.clock_offset += seconds

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def inject(
        self, operation: str, status: int, times: int = 1, retry_after: str | None = None, delay: float = 0.0
    ) -> None:
        self.injected.setdefault(operation, []).extend([Injected(status, retry_after, delay)] * times)

    def count(self, operation: str) -> int:
        return sum(1 for name, _ in self.calls if name == operation)

    def add_webhook(
        self,
        callback_url: str,
        name: str = "SIEM bridge",
        events: tuple[str, ...] = ("user.created", "authentication.failed"),
        enabled: bool = True,
        expiry_date: str | None = None,
    ) -> dict[str, Any]:
        hook: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "name": name,
            "callbackUrl": callback_url,
            "enabled": enabled,
            "expired": False,
            "events": [{"id": str(uuid.uuid4()), "type": kind} for kind in events],
            "token": "",
        }
        if expiry_date is not None:
            hook["expiryDate"] = expiry_date
        validate("Webhook", hook)
        self.webhooks[hook["id"]] = hook
        return hook

    def add_audit_event(self, **fields: Any) -> dict[str, Any]:
        """Store an audit event (at any time: a late one is seen by the queries that come after it)."""
        event = {"id": str(uuid.uuid4()), "eventTime": iso(self.now()), **fields}
        validate("AccountAuditEvent", event)
        self.audit_events.append(event)
        return event

    def settings(self, port: int, ca_file: Path) -> AdminApiSettings:
        return AdminApiSettings(
            hostname=f"127.0.0.1:{port}",
            application_id=self.application_id,
            shared_secret=self.shared_secret,
            ca_file=str(ca_file),
            request_timeout_seconds=2.0,
        )

    # --- the HTTP side ----------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/web/v1/adminapi/authenticate", self._authenticate, methods=["POST"]),
                Route("/api/web/v1/webhooks", self._list, methods=["GET"]),
                Route("/api/web/v1/webhooks/test/{id}", self._test, methods=["POST"]),
                Route("/api/web/v1/webhooks/{id}", self._get, methods=["GET"]),
                Route("/api/web/v1/webhooks/{id}", self._put, methods=["PUT"]),
                Route("/api/web/v2/reports/auditeventspaged/siem", self._audit, methods=["POST"]),
            ]
        )

    async def _enter(self, operation: str, request: Request, authenticated: bool = True) -> Response | None:
        """Record the call, then give an injected answer, or 401 without a live token; None = go on."""
        self.calls.append((operation, request.headers.get("authorization")))
        queue = self.injected.get(operation)
        if queue:
            injected = queue.pop(0)
            if injected.delay_seconds:
                await asyncio.sleep(injected.delay_seconds)
            if injected.status:
                headers = {"Retry-After": injected.retry_after} if injected.retry_after else None
                return self._error(injected.status, "injected", headers)
        if authenticated:
            expires = self.tokens.get(request.headers.get("authorization", ""))
            if expires is None or expires <= self.now():
                return self._error(401, "Access denied")
        return None

    @staticmethod
    def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        body = {"errorCode": str(status), "errorMessage": message}
        validate("ErrorInfo", body)
        return JSONResponse(body, status_code=status, headers=headers)

    @staticmethod
    def _answer(schema_name: str, document: Any) -> Response:
        if schema_name.startswith("["):
            for item in document:
                validate(schema_name[1:-1], item)
        else:
            validate(schema_name, document)
        return JSONResponse(document)

    async def _body(self, request: Request, schema_name: str) -> Any:
        document = json.loads(await request.body())
        validate(schema_name, document)
        return document

    async def _authenticate(self, request: Request) -> Response:
        if (early := await self._enter("authenticate", request, authenticated=False)) is not None:
            return early
        try:
            body = await self._body(request, "AdminApiAuthentication")
        except (ValueError, jsonschema.ValidationError):
            return self._error(400, "Bad Request")
        if body["applicationId"] != self.application_id or body["sharedSecret"] != self.shared_secret:
            return self._error(401, "Access denied")
        token = secrets.token_urlsafe(24)
        created = self.now()
        self.tokens[token] = created + self.token_lifetime_seconds
        return self._answer(
            "AdminApiAuthenticationResult",
            {
                "authToken": token,
                "creationTime": iso(created),
                "expirationTime": iso(created + self.token_lifetime_seconds),
            },
        )

    async def _list(self, request: Request) -> Response:
        if (early := await self._enter("list_webhooks", request)) is not None:
            return early
        return self._answer("[Webhook]", [self._current(hook) for hook in self.webhooks.values()])

    def _current(self, hook: dict[str, Any]) -> dict[str, Any]:
        """IDaaS marks a webhook past its expiry date expired and disabled."""
        expiry = hook.get("expiryDate")
        if expiry and parse_time(expiry).timestamp() <= self.now():
            hook["expired"], hook["enabled"] = True, False
        return hook

    def _lookup(self, request: Request) -> dict[str, Any] | None:
        hook = self.webhooks.get(request.path_params["id"])
        return None if hook is None else self._current(hook)

    async def _get(self, request: Request) -> Response:
        if (early := await self._enter("get_webhook", request)) is not None:
            return early
        hook = self._lookup(request)
        return self._error(404, "Not Found") if hook is None else self._answer("Webhook", hook)

    async def _put(self, request: Request) -> Response:
        if (early := await self._enter("update_webhook", request)) is not None:
            return early
        hook = self._lookup(request)
        if hook is None:
            return self._error(404, "Not Found")
        try:
            parms = await self._body(request, "WebhookParms")
        except (ValueError, jsonschema.ValidationError):
            return self._error(400, "Bad Request")
        self.updates.append(parms)
        hook.update(name=parms["name"], callbackUrl=parms["callbackUrl"], events=parms["events"])
        if "enabled" in parms:
            hook["enabled"] = parms["enabled"] and not hook["expired"]
        return self._answer("Webhook", hook)

    async def _test(self, request: Request) -> Response:
        if (early := await self._enter("test_webhook", request)) is not None:
            return early
        hook = self._lookup(request)
        if hook is None:
            return self._error(404, "Not Found")
        self.tests_sent.append(hook["id"])
        if self.on_test is not None:
            await asyncio.to_thread(self.on_test, hook)
        return Response(status_code=200)

    async def _audit(self, request: Request) -> Response:
        if (early := await self._enter("audit_events", request)) is not None:
            return early
        try:
            search = await self._body(request, "SearchParms")
        except (ValueError, jsonschema.ValidationError):
            return self._error(400, "Bad Request")
        self.searches.append(search)
        limit = search.get("limit", 100)
        if "cursor" in search:
            if search["cursor"] not in self._cursors:
                return self._error(400, "Invalid cursor")
            start, end, offset, limit = self._cursors.pop(search["cursor"])
        else:
            window = {item["name"]: item for item in search.get("searchByAttributes", [])}
            if "startTime" not in window:
                return self._error(400, "startTime is mandatory")
            start = window["startTime"]["value"]
            end = window["endTime"]["value"] if "endTime" in window else None
            offset = 0
        matching = sorted(
            (
                event
                for event in self.audit_events
                if parse_time(event["eventTime"]) >= parse_time(start)
                and (end is None or parse_time(event["eventTime"]) <= parse_time(end))
            ),
            key=lambda event: (parse_time(event["eventTime"]), event["id"]),
        )
        page = matching[offset : offset + limit]
        paging: dict[str, Any] = {"limit": limit}
        if offset + limit < len(matching):
            cursor = secrets.token_urlsafe(16)
            self._cursors[cursor] = (start, end, offset + limit, limit)
            paging["nextCursor"] = cursor
        return self._answer("AuditEventPage", {"results": page, "paging": paging})


@dataclass
class ServedFake:
    api: FakeAdminApi
    port: int
    ca_file: Path

    def settings(self) -> AdminApiSettings:
        return self.api.settings(self.port, self.ca_file)


def tls_certificate(directory: Path) -> tuple[Path, Path]:
    subprocess.run([str(ROOT / "deploy/dev/dev-cert.sh"), str(directory)], check=True, capture_output=True)
    return directory / "dev-cert.pem", directory / "dev-key.pem"


@pytest.fixture(scope="session")
def fake_admin_api_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tls_certificate(tmp_path_factory.mktemp("fake-admin-api-tls"))


@pytest.fixture
def fake_admin_api(fake_admin_api_certificate: tuple[Path, Path]) -> Iterator[ServedFake]:
    """A fresh fake on a free loopback port, over TLS with the dev certificate (the client verifies it)."""
    cert, key = fake_admin_api_certificate
    api = FakeAdminApi()
    config = uvicorn.Config(
        api.app(), host="127.0.0.1", port=0, ssl_certfile=str(cert), ssl_keyfile=str(key), log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake Admin API did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield ServedFake(api, port, cert)
    finally:
        server.should_exit = True
        thread.join(10)
