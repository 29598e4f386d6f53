"""A bounded, closed-loop load generator that signs each delivery like IDaaS and records every answer."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import orjson

from tests.signing import idaas_headers

TEMPLATE = {
    "type": "authentication.succeeded",
    "accountId": "acct-load",
    "data": {"subject": "u-1", "subjectName": "load.user", "resourceName": "User Portal", "token": "OTP"},
}


@dataclass
class Answer:
    delivery_id: str
    status: int
    seconds: float
    body: str
    started: float


@dataclass
class LoadResult:
    answers: list[Answer] = field(default_factory=list)

    def ids_with(self, predicate: object) -> set[str]:
        return {a.delivery_id for a in self.answers if predicate(a.status)}  # type: ignore[operator]

    @property
    def accepted(self) -> set[str]:
        return self.ids_with(lambda s: 200 <= s < 300)

    @property
    def max_seconds(self) -> float:
        return max(a.seconds for a in self.answers)

    def count(self, status: int) -> int:
        return sum(1 for a in self.answers if a.status == status)


async def run_load(
    base_url: str,
    token: str,
    total: int,
    workers: int,
    cafile: str | None = None,
    stop: asyncio.Event | None = None,
) -> LoadResult:
    """Send `total` deliveries over `workers` concurrent connections; stops early once `stop` is set."""
    result = LoadResult()
    url = f"{base_url}/webhooks/prod"
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=cafile) if cafile else False
    remaining = iter(range(total))
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in remaining:
            if stop is not None and stop.is_set():
                return
            delivery_id = str(uuid.uuid4())
            # A fresh event time: Kafka's time-based retention counts from the record timestamp.
            event_time = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            body = orjson.dumps({"id": delivery_id, "eventTime": event_time, **TEMPLATE})
            headers = idaas_headers(token, url, body)
            started = time.perf_counter()
            try:
                response = await client.post(url, content=body, headers=headers)
                status, text = response.status_code, response.text
            except httpx.TransportError as exc:
                status, text = 0, repr(exc)
            result.answers.append(Answer(delivery_id, status, time.perf_counter() - started, text, started))

    async with httpx.AsyncClient(verify=verify, timeout=10.0, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(workers)))
    return result
