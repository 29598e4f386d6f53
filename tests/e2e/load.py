"""A bounded, closed-loop load generator that signs each delivery like IDaaS and records every answer.

Requests are signed up front and sent over plain asyncio streams (HTTP/1.1 keep-alive): a general-purpose
client spends more CPU per request than the bridge does, and on two shared cores it would measure itself.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

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

    def ids_with(self, predicate: Callable[[int], bool]) -> set[str]:
        return {a.delivery_id for a in self.answers if predicate(a.status)}

    @property
    def accepted(self) -> set[str]:
        return self.ids_with(lambda s: 200 <= s < 300)

    @property
    def max_seconds(self) -> float:
        return max(a.seconds for a in self.answers)

    def count(self, status: int) -> int:
        return sum(1 for a in self.answers if a.status == status)


def signed_request(url: str, token: str) -> tuple[str, bytes]:
    """One new delivery as raw HTTP/1.1 bytes, with a fresh event time (Kafka retention counts from it)."""
    parts = urlsplit(url)
    delivery_id = str(uuid.uuid4())
    event_time = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    body = orjson.dumps({"id": delivery_id, "eventTime": event_time, **TEMPLATE})
    headers = idaas_headers(token, url, body) | {"Host": parts.netloc, "Content-Length": str(len(body))}
    head = f"POST {parts.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return delivery_id, head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, str]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = next(
        (int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0
    )
    body = await reader.readexactly(length) if length else b""
    return status, body.decode(errors="replace")


async def run_load(
    base_url: str,
    token: str,
    total: int,
    workers: int,
    cafile: str | None = None,
    stop: asyncio.Event | None = None,
    rate: float | None = None,
) -> LoadResult:
    """Send `total` deliveries over `workers` keep-alive connections, at most `rate` per second if given
    (steady load: delivery i is not sent before i / rate seconds). A failed connection is recorded as
    status 0 and reopened. Stops early once `stop` is set."""
    url = f"{base_url}/webhooks/prod"
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None
    requests = iter(enumerate([signed_request(url, token) for _ in range(total)]))
    result = LoadResult()
    loop = asyncio.get_running_loop()
    begin = loop.time()

    async def worker() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for index, (delivery_id, raw) in requests:
            if stop is not None and stop.is_set():
                break
            if rate is not None:
                await asyncio.sleep(max(0.0, begin + index / rate - loop.time()))
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(
                        parts.hostname,
                        parts.port,
                        ssl=context,
                        server_hostname=parts.hostname if context else None,
                    )
                reader, writer = connection
                writer.write(raw)
                await writer.drain()
                status, text = await asyncio.wait_for(_read_response(reader), 10)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                status, text = 0, repr(exc)
                if connection is not None:
                    connection[1].close()
                connection = None
                await asyncio.sleep(0.01)
            result.answers.append(Answer(delivery_id, status, time.perf_counter() - started, text, started))
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return result
