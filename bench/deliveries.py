"""Pre-built requests: unique IDaaS deliveries of all 16 sample types, signed just before a run (the
signature window is 5 minutes), as raw HTTP/1.1 for wrk and as JSON targets for vegeta.

The peer gets the same delivery bytes wrapped as one OTLP/JSON log record each (body
`{"bytesValue": base64(delivery)}`, bearer token): its kafka exporter's `encoding: raw` writes the original
bytes to Kafka.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from bridge.events.samples import sample_deliveries
from tests.signing import idaas_headers


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    headers: dict[str, str]
    body: bytes

    def raw(self) -> bytes:
        parts = urlsplit(self.url)
        headers = {"Host": parts.netloc, **self.headers, "Content-Length": str(len(self.body))}
        head = f"POST {parts.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return head.encode() + b"\r\n" + self.body

    def vegeta_target(self) -> bytes:
        return orjson.dumps(
            {
                "method": "POST",
                "url": self.url,
                "header": {name: [value] for name, value in self.headers.items()},
                "body": base64.b64encode(self.body).decode(),
            }
        )


def delivery_bodies(count: int) -> list[bytes]:
    """`count` deliveries cycling through the 16 types, each with a new id and the current event time."""
    samples = sample_deliveries()
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return [
        orjson.dumps({**samples[i % len(samples)], "id": str(uuid.uuid4()), "eventTime": now})
        for i in range(count)
    ]


def signed_deliveries(url: str, token: str, count: int) -> list[Request]:
    return [Request(url, idaas_headers(token, url, body), body) for body in delivery_bodies(count)]


def otlp_deliveries(url: str, token: str, count: int) -> list[Request]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    return [Request(url, headers, otlp_log_request(body)) for body in delivery_bodies(count)]


def otlp_log_request(delivery: bytes) -> bytes:
    record = {"body": {"bytesValue": base64.b64encode(delivery).decode()}}
    return orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]})


def write_wrk_file(path: Path, requests: list[Request]) -> None:
    with path.open("wb") as out:
        for request in requests:
            raw = request.raw()
            out.write(b"%d\n" % len(raw))
            out.write(raw)


def write_vegeta_targets(path: Path, requests: list[Request]) -> None:
    path.write_bytes(b"\n".join(request.vegeta_target() for request in requests) + b"\n")
