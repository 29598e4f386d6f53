"""A model of IDaaS's side of a webhook, for the whole-story test: each event is written to the fake Admin
API's audit log and, while the webhook is enabled, delivered (signed) to its callback URL; after
DISABLE_AFTER consecutive failed deliveries the webhook is disabled, as IDaaS does, and later events reach
only the audit log.

Simplified against IDaaS: one attempt per delivery (IDaaS retries a 5xx twice; none is answered here: the
bridge is either up and answers 2xx, or down and refuses the connection, which IDaaS does not retry).
"""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bridge.config import IDAAS_DEADLINE_SECONDS
from bridge.guard import DISABLE_AFTER, idaas_success
from tests.fake_admin_api import FakeAdminApi
from tests.signing import idaas_headers

ACTIONS = {"user.created": "ADD", "user.updated": "EDIT", "user.deleted": "REMOVE"}


@dataclass
class IdaasSimulator:
    api: FakeAdminApi
    webhook: dict[str, Any]
    token: str
    cafile: Path
    account_id: str = "5e1f0a2b-3c4d-4e5f-9a6b-7c8d9e0f1a2b"
    admin: str = "062e8a87-0000-4000-8000-000000000001"
    streak: int = 0
    delivered: int = 0

    def emit(self, kind: str, when: datetime) -> dict[str, Any]:
        """One user lifecycle event at `when`: audited always, delivered while the webhook is enabled."""
        user = str(uuid.uuid4())
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        shared = {
            "subject": self.admin,
            "subjectName": "ops.admin",
            "subjectType": "USER",
            "entityType": "USERS",
            "entityId": user,
            "entityName": f"user-{user[:8]}",
            "sourceIp": "198.51.100.7",
        }
        audit = self.api.add_audit_event(
            eventTime=stamp,
            accountId=self.account_id,
            eventCategory="MANAGEMENT",
            eventOutcome="SUCCESS",
            entityAction=ACTIONS[kind],
            **shared,
        )
        if self.webhook["enabled"]:
            body = {"id": str(uuid.uuid4()), "type": kind, "accountId": self.account_id, "eventTime": stamp}
            self._deliver(orjson.dumps({**body, "data": shared}))
        return audit

    def _deliver(self, body: bytes) -> None:
        url = self.webhook["callbackUrl"]
        status, elapsed = 0, IDAAS_DEADLINE_SECONDS
        try:
            with httpx.Client(
                verify=ssl.create_default_context(cafile=str(self.cafile)), timeout=3.0
            ) as client:
                answer = client.post(url, content=body, headers=idaas_headers(self.token, url, body))
            status, elapsed = answer.status_code, answer.elapsed.total_seconds()
        except httpx.TransportError:
            pass
        if idaas_success(status, elapsed):
            self.streak = 0
            self.delivered += 1
            return
        self.streak += 1
        if self.streak >= DISABLE_AFTER:
            self.webhook["enabled"] = False
