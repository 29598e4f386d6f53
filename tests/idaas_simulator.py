"""IDaaS's side of a webhook, for the whole-story test: each event is written to the fake Admin API's audit
log and, while the webhook is enabled, delivered (signed) to its callback URL with IDaaS's attempts and
retries. The webhook's state is the bridge's own model of IDaaS (bridge/idaas_delivery.py): after
DISABLE_AFTER consecutive failed deliveries the fake reports the webhook disabled and later events reach only
the audit log; a re-enable through the fake's Admin API (PUT enabled: true) starts a new streak.
"""

from __future__ import annotations

import itertools
import random
import ssl
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bridge.config import IDAAS_DEADLINE_SECONDS
from bridge.idaas_delivery import AutoDisableModel, idaas_success, retry_delay
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
    delivered: int = 0
    model: AutoDisableModel = field(default_factory=AutoDisableModel)
    jitter: random.Random = field(default_factory=random.Random)

    @property
    def streak(self) -> int:
        """Consecutive failed deliveries, as IDaaS counts them."""
        return self.model.streak

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
        self.model.set_enabled(self.webhook["enabled"])  # an admin or the bridge may have switched it
        if self.model.enabled:
            body = {"id": str(uuid.uuid4()), "type": kind, "accountId": self.account_id, "eventTime": stamp}
            self._deliver(orjson.dumps({**body, "data": shared}))
            self.webhook["enabled"] = self.model.enabled
        return audit

    def _deliver(self, body: bytes) -> None:
        """One delivery: IDaaS's attempts (a retry only after a 5xx), counted in the model."""
        url = self.webhook["callbackUrl"]
        verify = ssl.create_default_context(cafile=str(self.cafile))
        with httpx.Client(verify=verify, timeout=IDAAS_DEADLINE_SECONDS) as client:
            for attempt in itertools.count(1):  # retry_delay ends it after IDaaS's last attempt
                status, elapsed = self._attempt(client, url, body)
                delay = retry_delay(attempt, status, elapsed, self.jitter)
                if delay is None:
                    break
                time.sleep(delay)
        delivered = idaas_success(status, elapsed)
        self.delivered += delivered
        self.model.record(delivered)

    def _attempt(self, client: httpx.Client, url: str, body: bytes) -> tuple[int | None, float]:
        """The answer's status and time; None when none came (refused, TLS failure, timeout)."""
        try:
            answer = client.post(url, content=body, headers=idaas_headers(self.token, url, body))
        except httpx.TransportError:
            return None, IDAAS_DEADLINE_SECONDS
        return answer.status_code, answer.elapsed.total_seconds()
