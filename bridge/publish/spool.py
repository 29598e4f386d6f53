"""The durable spool: an append-only segment log on local disk, for events Kafka could not ack in time.

Each record is `[u32 length][u32 crc32][payload]`; a segment file holds records back to back and is deleted
once Kafka confirmed every record in it. Appends are group-committed: concurrent requests queue their
records, one writer thread writes them all and fsyncs once, then every waiting request gets its answer.
Nothing is acknowledged to IDaaS before its fsync returned. fsync never runs on the event loop.

At start-up every segment left by an earlier run is read back; a torn or corrupt record (a crash mid-write)
ends that segment's readable part and is counted in a metric, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from bridge import metrics
from bridge.errors import ReasonedError
from bridge.routing import OutboundRecord

log = logging.getLogger(__name__)

FRAME: Final = struct.Struct("<II")
#: timestamp_ms, spooled_at, topic length, key length, value length, header count.
RECORD_HEAD: Final = struct.Struct("<qdHIIH")
HEADER_HEAD: Final = struct.Struct("<HI")
SEGMENT_PREFIX: Final = "segment-"
SEGMENT_SUFFIX: Final = ".log"
#: Beside each segment, how much of it Kafka confirmed ("<records> <bytes>"). Written without fsync: a
#: stale checkpoint after a crash only means some records are published again (at least once).
CHECKPOINT_SUFFIX: Final = ".acked"


class SpoolError(ReasonedError):
    """The spool could not make a record durable: `reason` is `full` or `io_error`."""


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    record: OutboundRecord
    spooled_at: float
    segment: int
    size: int


def encode_record(record: OutboundRecord, spooled_at: float) -> bytes:
    topic = record.topic.encode()
    parts = [
        RECORD_HEAD.pack(
            record.timestamp_ms,
            spooled_at,
            len(topic),
            len(record.key),
            len(record.value),
            len(record.headers),
        ),
        topic,
        record.key,
        record.value,
    ]
    for name, value in record.headers:
        encoded = name.encode()
        parts += [HEADER_HEAD.pack(len(encoded), len(value)), encoded, value]
    payload = b"".join(parts)
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def decode_record(payload: bytes) -> tuple[OutboundRecord, float]:
    timestamp_ms, spooled_at, topic_len, key_len, value_len, header_count = RECORD_HEAD.unpack_from(payload)
    offset = RECORD_HEAD.size
    topic = payload[offset : offset + topic_len].decode()
    offset += topic_len
    key = payload[offset : offset + key_len]
    offset += key_len
    value = payload[offset : offset + value_len]
    offset += value_len
    headers: list[tuple[str, bytes]] = []
    for _ in range(header_count):
        name_len, header_len = HEADER_HEAD.unpack_from(payload, offset)
        offset += HEADER_HEAD.size
        name = payload[offset : offset + name_len].decode()
        offset += name_len
        headers.append((name, payload[offset : offset + header_len]))
        offset += header_len
    return OutboundRecord(topic, key, value, headers, timestamp_ms), spooled_at


def read_segment(path: Path, offset: int = 0) -> Iterator[tuple[bytes, int]]:
    """(payload, framed size) for each intact record from `offset`; stops at the first torn or corrupt one.

    Callers that read a segment still being written stop after the records known to be complete, so they
    never reach a half-written tail.
    """
    with path.open("rb") as segment:
        segment.seek(offset)
        while True:
            frame = segment.read(FRAME.size)
            if not frame:
                return
            length, crc = FRAME.unpack(frame) if len(frame) == FRAME.size else (0, 0)
            payload = segment.read(length) if length else b""
            if len(frame) < FRAME.size or len(payload) < length or zlib.crc32(payload) != crc:
                metrics.SPOOL_TORN_RECORDS.inc()
                log.warning(
                    "torn spool record skipped", extra={"segment": path.name, "offset": segment.tell()}
                )
                return
            yield payload, FRAME.size + length


@dataclass
class _Segment:
    number: int
    path: Path
    records: int = 0
    confirmed: int = 0
    bytes: int = 0
    #: Bytes of the confirmed prefix: where the drainer reads next.
    confirmed_bytes: int = 0
    sealed: bool = False
    #: When the oldest record not yet confirmed was spooled (None when none is waiting).
    oldest_unconfirmed: float | None = None

    @property
    def remaining(self) -> int:
        return self.records - self.confirmed


@dataclass
class _Pending:
    frame: bytes
    future: asyncio.Future[None]


@dataclass
class Spool:
    """The segment log. `append` is for the receiver; `read`/`confirm` are for the drainer.

    Only the writer task touches the active segment's file, rotation included, so a write in its
    thread never races a close.
    """

    directory: Path
    max_bytes: int
    segment_bytes: int
    _segments: dict[int, _Segment] = field(default_factory=dict)
    _active: _Segment | None = None
    _file: BinaryIO | None = None
    _pending: list[_Pending] = field(default_factory=list)
    _reserved: int = 0
    _writer: asyncio.Task[None] | None = None
    _wake_writer: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set whenever records were appended, so an idle drainer wakes up.
    appended: asyncio.Event = field(default_factory=asyncio.Event)
    #: used_bytes when an append was last refused for lack of room.
    _refused_at: int | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory, take over segments left by an earlier run, start the writer."""
        self.directory.mkdir(parents=True, exist_ok=True)
        found = sorted(
            int(path.name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)])
            for path in self.directory.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}")
        )
        for number in found:
            segment = _Segment(number, self._path(number), sealed=True)
            acked_records, acked_bytes = self._read_checkpoint(number)
            for payload, size in read_segment(segment.path):
                segment.records += 1
                segment.bytes += size
                if segment.records == acked_records + 1:
                    segment.oldest_unconfirmed = decode_record(payload)[1]
            if acked_records <= segment.records:
                segment.confirmed, segment.confirmed_bytes = acked_records, acked_bytes
            if segment.remaining == 0:
                self._delete(segment)
            else:
                self._segments[number] = segment
        self._start_segment((found[-1] if found else 0) + 1)
        metrics.SPOOL_CAPACITY.set(self.max_bytes)
        self.publish_gauges()
        self._writer = asyncio.get_running_loop().create_task(self._write_forever(), name="spool-writer")
        if self.pending_records:
            self.appended.set()

    async def close(self) -> None:
        """Write what is pending, stop the writer; records stay on disk for the next start."""
        if self._writer is not None:
            while self._pending and not self._writer.done():
                self._wake_writer.set()
                await asyncio.sleep(0.01)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._file is not None:
            self._file.close()
            self._file = None

    def _path(self, number: int) -> Path:
        return self.directory / f"{SEGMENT_PREFIX}{number:012d}{SEGMENT_SUFFIX}"

    def _start_segment(self, number: int) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()
        previous = self._active
        if previous is not None:
            previous.sealed = True
            if previous.remaining == 0:
                self._delete(previous)
        segment = _Segment(number, self._path(number))
        # Numbers are reused once the spool was empty: a checkpoint a crash left behind is not this one's.
        self._checkpoint_path(number).unlink(missing_ok=True)
        self._file = segment.path.open("ab")
        self._segments[number] = segment
        self._active = segment
        fsync_directory(self.directory)

    def _delete(self, segment: _Segment) -> None:
        self._segments.pop(segment.number, None)
        # The checkpoint first: a crash between the two then leaves a segment to publish again, never a
        # checkpoint that a later segment of the same number would take for its own.
        self._checkpoint_path(segment.number).unlink(missing_ok=True)
        segment.path.unlink(missing_ok=True)

    def _checkpoint_path(self, number: int) -> Path:
        return self._path(number).with_suffix(CHECKPOINT_SUFFIX)

    def _read_checkpoint(self, number: int) -> tuple[int, int]:
        try:
            records, size = self._checkpoint_path(number).read_text().split()
            return int(records), int(size)
        except (OSError, ValueError):
            return 0, 0

    def _write_checkpoint(self, segment: _Segment) -> None:
        path = self._checkpoint_path(segment.number)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(f"{segment.confirmed} {segment.confirmed_bytes}")
        temporary.replace(path)

    # --- appending -------------------------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        return sum(segment.bytes for segment in self._segments.values())

    @property
    def pending_records(self) -> int:
        return sum(segment.remaining for segment in self._segments.values())

    def has_room(self, size: int = 0) -> bool:
        return self.used_bytes + self._reserved + size <= self.max_bytes

    @property
    def full(self) -> bool:
        """An append was refused for lack of room and nothing was drained since (what readiness asks:
        `has_room()` alone stays true until the last byte, long after records stopped fitting)."""
        return not self.has_room() or (self._refused_at is not None and self.used_bytes >= self._refused_at)

    async def append(self, record: OutboundRecord) -> None:
        """Return once `record` is fsync'd; raise SpoolError when full or when the disk fails."""
        frame = encode_record(record, time.time())
        if not self.has_room(len(frame)):
            self._refused_at = self.used_bytes
            raise SpoolError("full", f"spool holds {self.used_bytes} of {self.max_bytes} bytes")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reserved += len(frame)
        self._pending.append(_Pending(frame, future))
        self._wake_writer.set()
        await future
        metrics.SPOOL_APPENDS.labels(topic=record.topic).inc()

    async def _write_forever(self) -> None:
        """The only writer of segment files. It never dies: a failure fails the batch (503) and closes the
        segment's file, so the next batch starts a new segment: a failed write may have left bytes past the
        known end of this one, and a record appended after them would be unreadable."""
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            batch, self._pending = self._pending, []
            try:
                await self._write(batch)
            except Exception as exc:
                metrics.SPOOL_WRITE_ERRORS.inc()
                log.error("spool write failed", extra={"error": repr(exc)})
                if self._file is not None:
                    file, self._file = self._file, None
                    with contextlib.suppress(OSError):
                        file.close()
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(SpoolError("io_error", f"spool write failed: {exc!r}"))
            finally:
                self._reserved -= sum(len(item.frame) for item in batch)

    async def _write(self, batch: list[_Pending]) -> None:
        active = self._active
        assert active is not None
        if self._file is None:  # closed after a failure
            self._start_segment(active.number + 1)
            active = self._active
            assert active is not None
        if not batch:
            if active.records and active.remaining == 0:
                self._start_segment(active.number + 1)
                self.publish_gauges()
            return
        assert self._file is not None
        data = b"".join(item.frame for item in batch)
        started = time.perf_counter()
        await asyncio.to_thread(write_and_sync, self._file, data)
        metrics.SPOOL_FSYNC_DURATION.observe(time.perf_counter() - started)
        active.records += len(batch)
        active.bytes += len(data)
        if active.oldest_unconfirmed is None:
            active.oldest_unconfirmed = time.time()
        for item in batch:
            if not item.future.done():
                item.future.set_result(None)
        self.publish_gauges()
        self.appended.set()
        if active.bytes >= self.segment_bytes:
            self._start_segment(active.number + 1)

    # --- draining --------------------------------------------------------------------------------------

    def drainable_segments(self) -> list[int]:
        """Segments with records not yet confirmed, oldest first."""
        return sorted(number for number, segment in self._segments.items() if segment.remaining > 0)

    def next_batch(self, number: int, limit: int) -> list[SpooledRecord]:
        """Up to `limit` unconfirmed records of segment `number`, in order (blocking: call in a thread)."""
        segment = self._segments[number]
        count = min(limit, segment.remaining)
        out: list[SpooledRecord] = []
        if count <= 0:
            return out
        for payload, size in read_segment(segment.path, segment.confirmed_bytes):
            record, spooled_at = decode_record(payload)
            out.append(SpooledRecord(record, spooled_at, number, size))
            if len(out) == count:
                break
        return out

    def drop_unreadable(self, number: int) -> None:
        """Give up on the rest of segment `number`: `next_batch` found no readable record where the counters
        say there are some (a record corrupted on disk; read_segment counted it). Without this the drain
        would retry it forever and never reach the segments behind it."""
        segment = self._segments[number]
        log.error(
            "spool segment unreadable past a corrupt record; its remaining records are lost",
            extra={"segment": segment.path.name, "lost_records": segment.remaining},
        )
        segment.confirmed, segment.confirmed_bytes = segment.records, segment.bytes
        self._progressed(segment, None)

    def confirm(self, confirmed: list[SpooledRecord], next_spooled_at: float | None) -> None:
        """These records (a prefix of one segment's unconfirmed ones) are in Kafka.

        A sealed segment is deleted once all its records are; `next_spooled_at` is when the next
        unconfirmed record of the segment was spooled, if known, for the oldest-record age gauge.
        """
        if not confirmed:
            return
        segment = self._segments[confirmed[0].segment]
        segment.confirmed += len(confirmed)
        segment.confirmed_bytes += sum(item.size for item in confirmed)
        self._progressed(segment, next_spooled_at)

    def _progressed(self, segment: _Segment, next_spooled_at: float | None) -> None:
        """After `segment`'s confirmed prefix grew: delete it once done and sealed, else checkpoint it."""
        if segment.remaining == 0 and segment.sealed:
            self._delete(segment)
        else:
            try:
                self._write_checkpoint(segment)
            except OSError as exc:  # best effort: a stale checkpoint only means publishing again
                log.warning("spool checkpoint not written", extra={"error": str(exc)})
            if segment.remaining == 0:
                segment.oldest_unconfirmed = None
                self._wake_writer.set()
            elif next_spooled_at is not None:
                segment.oldest_unconfirmed = next_spooled_at
        self.publish_gauges()

    def publish_gauges(self) -> None:
        metrics.SPOOL_RECORDS.set(self.pending_records)
        metrics.SPOOL_BYTES.set(self.used_bytes)
        waiting = [s.oldest_unconfirmed for s in self._segments.values() if s.oldest_unconfirmed is not None]
        metrics.SPOOL_OLDEST_AGE.set(time.time() - min(waiting) if waiting else 0)


def write_and_sync(file: BinaryIO, data: bytes) -> None:
    file.write(data)
    file.flush()
    os.fsync(file.fileno())


def fsync_directory(directory: Path) -> None:
    """A new segment file survives a crash only once its directory entry is synced too."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
