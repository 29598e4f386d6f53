"""Records Kafka refused for good, kept on disk beside the spool until an operator replays them.

A record the broker will never take (larger than the topic's max.message.bytes, a timestamp outside the
broker's allowed range) must neither block every record behind it in the spool nor be dropped: IDaaS got
a 2xx for it. The drainer moves it here (fsync'd, one JSON line per record, readable with `jq`), the
`idaas_bridge_rejected_records` gauge and its alert tell the operator, and once the topic is fixed
`idaas-bridge rejected --replay` publishes the records and keeps only those Kafka still refuses.
"""

from __future__ import annotations

import base64
import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from bridge import metrics
from bridge.errors import ReasonedError
from bridge.publish.spool import DIRECTORY_MODE, fsync_directory, private, write_and_sync
from bridge.routing import OutboundRecord

FILE_NAME: Final = "rejected.jsonl"


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    record: OutboundRecord
    reason: str
    detail: str
    rejected_at: float


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def encode_line(rejected: RejectedRecord) -> bytes:
    record = rejected.record
    line = {
        "rejected_at": rejected.rejected_at,
        "reason": rejected.reason,
        "detail": rejected.detail,
        "topic": record.topic,
        "timestamp_ms": record.timestamp_ms,
        "key_b64": _b64(record.key),
        "headers": [[name, _b64(value)] for name, value in record.headers],
        "value_b64": _b64(record.value),
    }
    return orjson.dumps(line) + b"\n"


def decode_line(line: bytes) -> RejectedRecord:
    fields = orjson.loads(line)
    record = OutboundRecord(
        topic=fields["topic"],
        key=base64.b64decode(fields["key_b64"]),
        value=base64.b64decode(fields["value_b64"]),
        headers=[(name, base64.b64decode(value)) for name, value in fields["headers"]],
        timestamp_ms=fields["timestamp_ms"],
    )
    return RejectedRecord(record, fields["reason"], fields["detail"], fields["rejected_at"])


class RejectedRecords:
    """The spool directory's rejected.jsonl. Writers and the replay command take an exclusive flock, so a
    replay never races the running bridge's appends. All methods block (file I/O, fsync)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a", opener=private) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def keep(self, record: OutboundRecord, error: ReasonedError) -> None:
        """Append and fsync one record; returns only once it is durable."""
        line = encode_line(RejectedRecord(record, error.reason, str(error), time.time()))
        with self._locked():
            created = not self.path.exists()
            with open(self.path, "ab", opener=private) as file:
                write_and_sync(file, line)
            if created:
                fsync_directory(self.path.parent)
        metrics.SPOOL_REJECTED.labels(topic=record.topic).inc()
        self.publish_gauge()

    def read(self) -> list[RejectedRecord]:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        return [decode_line(line) for line in lines if line.strip()]

    def publish_gauge(self) -> None:
        try:
            count = self.path.read_bytes().count(b"\n")
        except FileNotFoundError:
            count = 0
        metrics.REJECTED_RECORDS.set(count)

    def replay(self, publish: Callable[[list[RejectedRecord]], list[RejectedRecord]]) -> tuple[int, int]:
        """Under the lock, hand every kept record to `publish`, which returns those Kafka still refused;
        only they are written back (atomically). Returns (published, still refused)."""
        if not self.path.exists():
            return 0, 0
        with self._locked():
            kept = self.read()
            if not kept:
                return 0, 0
            refused = publish(kept)
            if refused:
                staging = self.path.with_suffix(".tmp")
                with open(staging, "wb", opener=private) as file:
                    write_and_sync(file, b"".join(encode_line(rejected) for rejected in refused))
                staging.replace(self.path)
            else:
                self.path.unlink()
            fsync_directory(self.path.parent)
        self.publish_gauge()
        return len(kept) - len(refused), len(refused)
