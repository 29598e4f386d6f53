"""The durable spool: an append-only segment log on local disk, for events Kafka could not ack in time.

A segment file starts with the 8-byte header SEGMENT_MAGIC and holds records back to back, each
`[u32 length][u32 crc32 of the length bytes and the payload][payload]`, and is deleted once Kafka confirmed
every record in it. Appends are group-committed: concurrent requests queue their records, one writer task
hands them all to the spool's own thread, which writes them and fsyncs once; then every waiting request
gets its answer. Nothing is acknowledged to IDaaS before its fsync returned.

Every file-system call (writes, fsyncs, segment rotation, directory fsyncs, reads, unlinks, checkpoints)
runs on that one thread of the spool's own executor, never on the event loop; being one thread it also
orders them: closing a file can only happen after the write in progress on it.

Nothing on disk can stop the spool. A record is believed only after its length was checked against the
bytes left in the file (before anything is read for it), its checksum and its decoding; the first one
that fails (a crash mid-write, a zero-filled tail, bit rot) ends the readable part of its segment: what
is before it is drained as usual, the rest of the segment is copied into a `quarantine-*.bin` file beside
the segments and counted (idaas_bridge_spool_quarantined_bytes_total). Files the spool did not write are
left alone with a warning.

Segments of the first format (no header; the crc32 covers only the payload) are still read, with the same
checks; new segments are always written in the current format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, TypeVar

from bridge import metrics
from bridge.errors import ReasonedError
from bridge.routing import OutboundRecord

log = logging.getLogger(__name__)

#: Length, then the crc32 of the length's own 4 bytes followed by the payload.
FRAME: Final = struct.Struct("<II")
U32: Final = struct.Struct("<I")
#: timestamp_ms, spooled_at, topic length, key length, value length, header count.
RECORD_HEAD: Final = struct.Struct("<qdHIIH")
HEADER_HEAD: Final = struct.Struct("<HI")
#: Starts every segment of the current format. Read as the length of a first-format frame it would be
#: 1.3 GB, far above any record, so the two formats are never mistaken for each other.
SEGMENT_MAGIC: Final = b"IDSPOOL\x02"
SEGMENT_PREFIX: Final = "segment-"
SEGMENT_SUFFIX: Final = ".log"
SEGMENT_NAME: Final = re.compile(r"segment-(\d{12})\.log")
#: Beside each segment, how much of it Kafka confirmed ("<records> <byte offset>"). Written without fsync:
#: a stale checkpoint after a crash only means some records are published again (at least once).
CHECKPOINT_SUFFIX: Final = ".acked"
CHECKPOINT_STAGING_SUFFIX: Final = ".tmp"
QUARANTINE_PREFIX: Final = "quarantine-"
#: Files other parts of the bridge keep in the spool directory (rejected.py; the backfill's checkpoints,
#: state and locks, bridge/adminapi; the lock one bridge holds on spool.path, spool_root.py), the workers'
#: own spool directories (stranded.py) and their metric files (workers.py), and a file system's own.
OTHER_FILES: Final = re.compile(
    r"rejected\.(jsonl|lock|tmp)|backfill-[A-Za-z0-9_.-]+\.(json|lock|tmp)|bridge\.lock|worker-\d+|\.metrics"
    r"|lost\+found"
)
#: The spool holds whole events (names, e-mail and IP addresses): for the bridge's user only.
DIRECTORY_MODE: Final = 0o700
FILE_MODE: Final = 0o600
#: A segment whose records were all confirmed is kept for appends until it reaches segment_bytes, or until
#: nothing was appended for this long: rotating per drained record would cost a file and two fsyncs each.
SEGMENT_IDLE_SECONDS: Final = 60.0
COPY_CHUNK_BYTES: Final = 1 << 20

T = TypeVar("T")


class SpoolError(ReasonedError):
    """The spool could not make a record durable: `reason` is `full`, `io_error` or `closed`."""


class CorruptRecord(ValueError):
    """A payload whose checksum matched but which does not decode as a record."""


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    record: OutboundRecord
    spooled_at: float
    segment: int
    size: int


def frame(payload: bytes) -> bytes:
    length = U32.pack(len(payload))
    return length + U32.pack(zlib.crc32(payload, zlib.crc32(length))) + payload


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
    return frame(b"".join(parts))


def decode_record(payload: bytes) -> tuple[OutboundRecord, float]:
    """The record and its spool time; CorruptRecord unless `payload` is exactly one well-formed record."""
    try:
        timestamp_ms, spooled_at, topic_len, key_len, value_len, header_count = RECORD_HEAD.unpack_from(
            payload
        )
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
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptRecord(f"not a spool record: {exc}") from exc
    # Offsets only grow: a field that ran past the end (sliced short) leaves the sum above the length.
    if offset != len(payload):
        raise CorruptRecord(f"the fields add up to {offset} bytes, the record has {len(payload)}")
    if not topic or not math.isfinite(spooled_at):
        raise CorruptRecord("an empty topic or an impossible spool time")
    return OutboundRecord(topic, key, value, headers, timestamp_ms), spooled_at


class SegmentReader:
    """Reads one segment file's records in order, believing each only after every check: its length
    against the bytes left in the file (checked before anything is read for it, so a corrupt length never
    makes a huge allocation), its checksum, its decoding. `damaged_at` is the offset of the first record
    that failed one (None while none did). Blocking: runs on the spool's thread."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.size = os.fstat(file.fileno()).st_size
        head = file.read(len(SEGMENT_MAGIC))
        #: The current format (a header cut short by a crash is an empty segment of it), else the first.
        self.current_format = SEGMENT_MAGIC.startswith(head)
        self.start = len(head) if self.current_format else 0
        self.damaged_at: int | None = None

    def records(self, offset: int) -> Iterator[tuple[OutboundRecord, float, int]]:
        """(record, spooled_at, framed size) from `offset` to the end of the file or the first bad record."""
        self._file.seek(offset)
        while offset < self.size:
            head = self._file.read(FRAME.size)
            length, crc = FRAME.unpack(head) if len(head) == FRAME.size else (0, 0)
            # An empty record is never valid: an all-zero frame is a zero-filled tail, not a record.
            if not RECORD_HEAD.size <= length <= self.size - offset - FRAME.size:
                self.damaged_at = offset
                return
            payload = self._file.read(length)
            seed = zlib.crc32(head[:4]) if self.current_format else 0
            try:
                if len(payload) < length or zlib.crc32(payload, seed) != crc:
                    raise CorruptRecord("checksum mismatch")
                record, spooled_at = decode_record(payload)
            except CorruptRecord:
                self.damaged_at = offset
                return
            yield record, spooled_at, FRAME.size + length
            offset += FRAME.size + length


@dataclass
class _Segment:
    number: int
    path: Path
    records: int = 0
    confirmed: int = 0
    #: The file's size as far as the spool wrote or read it (the header included).
    bytes: int = 0
    #: Offset of the first record not yet confirmed: where the drainer reads next.
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
    """The segment log. `append` is for the receiver; `next_batch`/`confirm` are for the drainer.

    Only the writer task touches the active segment's file, rotation included; in-memory state changes
    only on the event loop, file-system work only on the spool's thread.
    """

    directory: Path
    max_bytes: int
    segment_bytes: int
    idle_seconds: float = SEGMENT_IDLE_SECONDS
    _segments: dict[int, _Segment] = field(default_factory=dict)
    _active: _Segment | None = None
    _file: BinaryIO | None = None
    _pending: list[_Pending] = field(default_factory=list)
    #: The batch the writer is writing now, so that a close past its deadline can still answer it.
    _writing: list[_Pending] = field(default_factory=list)
    _reserved: int = 0
    _closing: bool = False
    _writer: asyncio.Task[None] | None = None
    _wake_writer: asyncio.Event = field(default_factory=asyncio.Event)
    #: Its own thread, so nothing else queued on the loop's default executor can delay an fsync.
    _executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
    )
    #: Set whenever records were appended, so an idle drainer wakes up.
    appended: asyncio.Event = field(default_factory=asyncio.Event)
    #: used_bytes when an append was last refused for lack of room.
    _refused_at: int | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the directory, take over segments left by an earlier run, start the writer."""
        segments, last_number = await self._run(self._recover)
        self._segments = {segment.number: segment for segment in segments}
        await self._rotate(last_number + 1)
        metrics.SPOOL_CAPACITY.set(self.max_bytes)
        self.publish_gauges()
        self._writer = asyncio.get_running_loop().create_task(self._write_forever(), name="spool-writer")
        if self.pending_records:
            self.appended.set()

    async def close(self, timeout: float) -> None:
        """Write what is pending, stop the writer and close the segment file, within `timeout` seconds;
        records stay on disk for the next start. A write in progress is never cut short: closing the file
        is queued behind it on the spool's thread. Appends past the deadline, or after close, get a
        SpoolError (503: IDaaS delivers them again)."""
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._writer is not None:
            self._wake_writer.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), timeout)
            except TimeoutError:
                self._writer.cancel()
                unanswered = [item for item in self._writing + self._pending if not item.future.done()]
                log.warning(
                    "spool writes not finished within the shutdown budget; their deliveries get 503",
                    extra={"unanswered": len(unanswered), "budget_seconds": timeout},
                )
                for item in unanswered:
                    item.future.set_exception(SpoolError("closed", "the bridge is shutting down"))
        file, self._file = self._file, None
        if file is not None:
            closing = loop.run_in_executor(self._executor, file.close)
            try:
                await asyncio.wait_for(closing, max(0.0, deadline - loop.time()))
            except (TimeoutError, OSError) as exc:
                log.warning("spool segment not closed cleanly", extra={"error": repr(exc)})
        self._executor.shutdown(wait=False)

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _path(self, number: int) -> Path:
        return self.directory / f"{SEGMENT_PREFIX}{number:012d}{SEGMENT_SUFFIX}"

    def _checkpoint_path(self, number: int) -> Path:
        return self._path(number).with_suffix(CHECKPOINT_SUFFIX)

    def _recover(self) -> tuple[list[_Segment], int]:
        """The segments left by an earlier run with records still to publish, and the highest segment
        number in use. Blocking: runs on the spool's thread."""
        self.directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        try:
            os.chmod(self.directory, DIRECTORY_MODE)
        except OSError as exc:
            log.warning(
                f"could not restrict the spool directory {self.directory} to its owner (mode 0700): it "
                "holds whole events; fix its owner or mode",
                extra={"error": str(exc)},
            )
        numbers: list[int] = []
        segments: list[_Segment] = []
        for entry in sorted(self.directory.iterdir()):
            name = SEGMENT_NAME.fullmatch(entry.name)
            if name is not None:
                numbers.append(int(name.group(1)))  # never reused, even when it is not a file
            if name is not None and entry.is_file() and not entry.is_symlink():
                try:
                    segment = self._recover_segment(int(name.group(1)))
                except OSError as exc:  # a crash loop would refuse every delivery; the next start retries
                    log.error(
                        "spool segment could not be read; left in place for the next start",
                        extra={"segment": entry.name, "error": str(exc)},
                    )
                    continue
                if segment is not None:
                    segments.append(segment)
            elif not self._known(entry):
                log.warning(
                    "spool directory entry ignored: the bridge did not write it",
                    extra={"path": str(entry)},
                )
        return segments, max(numbers, default=0)

    @staticmethod
    def _known(entry: Path) -> bool:
        """Files the spool or its neighbours write (segments are recognised by the caller)."""
        if entry.name.startswith(QUARANTINE_PREFIX) or OTHER_FILES.fullmatch(entry.name):
            return True
        stem = SEGMENT_NAME.fullmatch(entry.with_suffix(SEGMENT_SUFFIX).name)
        return stem is not None and entry.suffix in (CHECKPOINT_SUFFIX, CHECKPOINT_STAGING_SUFFIX)

    def _recover_segment(self, number: int) -> _Segment | None:
        """Read one segment of an earlier run back: its readable records, where the confirmed ones end,
        and its damaged rest moved to a quarantine file. None once nothing in it waits for Kafka."""
        segment = _Segment(number, self._path(number), sealed=True)
        acked_records, acked_bytes = self._read_checkpoint(number)
        with segment.path.open("r+b") as file:
            reader = SegmentReader(file)
            start = reader.start
            # Records behind the checkpoint are in Kafka: the reading starts after them, unless the
            # checkpoint does not point at a record (or the end), as when a crash left a stale one.
            if acked_records and reader.start < acked_bytes <= reader.size:
                first = next(reader.records(acked_bytes), None)
                if first is not None or acked_bytes == reader.size:
                    segment.confirmed = segment.records = acked_records
                    start = acked_bytes
                reader.damaged_at = None
            segment.confirmed_bytes = offset = start
            for _record, spooled_at, size in reader.records(start):
                if segment.oldest_unconfirmed is None and segment.records >= segment.confirmed:
                    segment.oldest_unconfirmed = spooled_at
                segment.records += 1
                offset += size
                if offset == acked_bytes and segment.records == acked_records and not segment.confirmed:
                    segment.confirmed, segment.confirmed_bytes = acked_records, acked_bytes
                    segment.oldest_unconfirmed = None
            segment.bytes = offset
            if reader.damaged_at is not None:
                quarantine(file, segment.path, reader.damaged_at, reader.size)
                file.truncate(reader.damaged_at)
                file.flush()
                os.fsync(file.fileno())
        if segment.remaining == 0:
            delete_segment(segment.path, self._checkpoint_path(number))
            return None
        return segment

    def _read_checkpoint(self, number: int) -> tuple[int, int]:
        return read_checkpoint(self._checkpoint_path(number))

    async def _rotate(self, number: int) -> None:
        """Close the active segment's file (if still open) and start segment `number` as the active one;
        the previous one is sealed, and deleted if Kafka has all of it."""
        file, self._file = self._file, None
        path = self._path(number)
        self._file = await self._run(start_segment_file, file, path, self._checkpoint_path(number))
        previous = self._active
        segment = _Segment(number, path, bytes=len(SEGMENT_MAGIC), confirmed_bytes=len(SEGMENT_MAGIC))
        self._segments[number] = segment
        self._active = segment
        if previous is not None:
            previous.sealed = True
            if previous.remaining == 0:
                await self._delete(previous)

    async def _delete(self, segment: _Segment) -> None:
        self._segments.pop(segment.number, None)
        try:
            await self._run(delete_segment, segment.path, self._checkpoint_path(segment.number))
        except OSError as exc:
            log.warning(
                "drained spool segment not deleted; the next start publishes its records again",
                extra={"segment": segment.path.name, "error": str(exc)},
            )

    # --- appending -------------------------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        """Bytes of the segments that still hold records for Kafka (a drained active segment is
        reclaimed by rotating it away before it would take room a record needs)."""
        return sum(segment.bytes for segment in self._segments.values() if segment.remaining)

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
        """Return once `record` is fsync'd; raise SpoolError when full, closed or when the disk fails."""
        if self._closing:
            raise SpoolError("closed", "the bridge is shutting down")
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
        """The only writer of segment files, until close() and nothing is pending. It never dies of an
        error: a failure fails the batch (503) and closes the segment's file, so the next batch starts a
        new segment: a failed write may have left bytes past the known end of this one, and a record
        appended after them would be unreadable."""
        while not (self._closing and not self._pending):
            if not await self._wait_for_work():
                await self._rotate_if_idle()
                continue
            self._wake_writer.clear()
            self._writing, self._pending = self._pending, []
            batch = self._writing
            try:
                await self._write(batch)
            except Exception as exc:
                metrics.SPOOL_WRITE_ERRORS.inc()
                log.error("spool write failed", extra={"error": repr(exc)})
                if self._file is not None:
                    file, self._file = self._file, None
                    with contextlib.suppress(OSError):
                        await self._run(file.close)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(SpoolError("io_error", f"spool write failed: {exc!r}"))
            finally:
                self._writing = []
                self._reserved -= sum(len(item.frame) for item in batch)

    async def _wait_for_work(self) -> bool:
        """Wait for records to write; False when the active segment, drained, stayed idle too long."""
        active = self._active
        idle = active is not None and active.records > 0 and active.remaining == 0
        try:
            await asyncio.wait_for(self._wake_writer.wait(), self.idle_seconds if idle else None)
        except TimeoutError:
            return False
        return True

    async def _rotate_if_idle(self) -> None:
        active = self._active
        if active is not None and active.records and active.remaining == 0 and not self._pending:
            await self._rotate(active.number + 1)
            self.publish_gauges()

    async def _write(self, batch: list[_Pending]) -> None:
        active = self._active
        assert active is not None
        data = b"".join(item.frame for item in batch)
        disk_bytes = sum(segment.bytes for segment in self._segments.values())
        drained = active.records > 0 and active.remaining == 0
        # A failed write closed the file; a drained segment gives its room back before the spool outgrows
        # max_bytes on disk.
        if self._file is None or (drained and disk_bytes + len(data) > self.max_bytes):
            await self._rotate(active.number + 1)
            active = self._active
            assert active is not None
        if not batch:
            return
        assert self._file is not None
        started = time.perf_counter()
        await self._run(write_and_sync, self._file, data)
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
            await self._rotate(active.number + 1)

    # --- draining --------------------------------------------------------------------------------------

    def drainable_segments(self) -> list[int]:
        """Segments with records not yet confirmed, oldest first."""
        return sorted(number for number, segment in self._segments.items() if segment.remaining > 0)

    async def next_batch(self, number: int, limit: int) -> list[SpooledRecord]:
        """Up to `limit` unconfirmed records of segment `number`, in order.

        Empty when the next one is unreadable (corrupted on disk after it was written): the rest of the
        segment then goes to a quarantine file and counts as settled, so the drain goes on behind it."""
        segment = self._segments[number]
        count = min(limit, segment.remaining)
        if count <= 0:
            return []
        found = await self._run(read_records, segment.path, segment.confirmed_bytes, count)
        if not found:
            await self._quarantine_rest(segment)
        return [SpooledRecord(record, at, number, size) for record, at, size in found]

    async def _quarantine_rest(self, segment: _Segment) -> None:
        records, end, lost = segment.records, segment.bytes, segment.remaining
        target = await self._run(quarantine_range, segment.path, segment.confirmed_bytes, end)
        log.error(
            "spool segment unreadable past a corrupt record; its rest was moved to a quarantine file",
            extra={"segment": segment.path.name, "lost_records": lost, "quarantine": str(target)},
        )
        segment.confirmed, segment.confirmed_bytes = records, end
        await self._progressed(segment, None)

    async def confirm(self, confirmed: list[SpooledRecord], next_spooled_at: float | None) -> None:
        """These records (a prefix of one segment's unconfirmed ones) are in Kafka.

        A sealed segment is deleted once all its records are; `next_spooled_at` is when the next
        unconfirmed record of the segment was spooled, if known, for the oldest-record age gauge.
        """
        if not confirmed:
            return
        segment = self._segments[confirmed[0].segment]
        segment.confirmed += len(confirmed)
        segment.confirmed_bytes += sum(item.size for item in confirmed)
        await self._progressed(segment, next_spooled_at)

    async def _progressed(self, segment: _Segment, next_spooled_at: float | None) -> None:
        """After `segment`'s confirmed prefix grew: delete it once done and sealed, else checkpoint it."""
        if segment.remaining == 0 and segment.sealed:
            await self._delete(segment)
        else:
            if segment.remaining == 0:
                segment.oldest_unconfirmed = None
                self._wake_writer.set()  # starts the idle timer of the drained active segment
            elif next_spooled_at is not None:
                segment.oldest_unconfirmed = next_spooled_at
            checkpoint = f"{segment.confirmed} {segment.confirmed_bytes}"
            try:
                await self._run(write_checkpoint, self._checkpoint_path(segment.number), checkpoint)
            except OSError as exc:  # best effort: a stale checkpoint only means publishing again
                log.warning("spool checkpoint not written", extra={"error": str(exc)})
        self.publish_gauges()

    def publish_gauges(self) -> None:
        metrics.SPOOL_RECORDS.set(self.pending_records)
        metrics.SPOOL_BYTES.set(self.used_bytes)
        waiting = [s.oldest_unconfirmed for s in self._segments.values() if s.oldest_unconfirmed is not None]
        metrics.SPOOL_OLDEST_AGE.set(time.time() - min(waiting) if waiting else 0)


# --- blocking file-system work: only ever on the spool's thread (or in a command run outside the bridge) ---


def private(path: str, flags: int) -> int:
    """An `opener` for open(): files the bridge creates in the spool directory are for its user only."""
    return os.open(path, flags, FILE_MODE)


def write_and_sync(file: BinaryIO, data: bytes) -> None:
    file.write(data)
    file.flush()
    os.fsync(file.fileno())


def replace_durably(path: Path, data: bytes) -> None:
    """Write `path` atomically and durably: after a crash it holds the old content or `data`, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # One staging file per writing thread: two writers never share one.
    staging = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}{CHECKPOINT_STAGING_SUFFIX}")
    with open(staging, "wb", opener=private) as handle:
        write_and_sync(handle, data)
    os.replace(staging, path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """A new or renamed file survives a crash only once its directory entry is synced too."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def start_segment_file(previous: BinaryIO | None, path: Path, checkpoint: Path) -> BinaryIO:
    """Close the previous segment's file and create `path` with its header, both durable."""
    if previous is not None:
        with contextlib.suppress(OSError):  # after a failed write its buffer may fail again
            previous.close()
    # Numbers are reused once the spool was empty: a checkpoint a crash left behind is not this one's.
    checkpoint.unlink(missing_ok=True)
    # A file of this number can only be what a failed attempt to start it left: truncated.
    file = open(path, "wb", opener=private)  # noqa: SIM115 - the caller owns it
    try:
        write_and_sync(file, SEGMENT_MAGIC)
        fsync_directory(path.parent)
    except BaseException:
        file.close()
        raise
    return file


def delete_segment(path: Path, checkpoint: Path) -> None:
    # The checkpoint first: a crash between the two then leaves a segment to publish again, never a
    # checkpoint that a later segment of the same number would take for its own.
    checkpoint.unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def write_checkpoint(path: Path, text: str) -> None:
    staging = path.with_suffix(CHECKPOINT_STAGING_SUFFIX)
    with open(staging, "w", opener=private) as file:
        file.write(text)
    staging.replace(path)


def read_checkpoint(path: Path) -> tuple[int, int]:
    """(records, byte offset) Kafka confirmed of a segment; (0, 0) without a readable checkpoint."""
    try:
        records, size = path.read_text().split()
        return int(records), int(size)
    except (OSError, ValueError):
        return 0, 0


def unconfirmed_records(directory: Path) -> Iterator[OutboundRecord]:
    """The records a spool directory still holds for Kafka, oldest segment first, read without changing
    anything (for a dry run over a spool another process left behind)."""
    for path in sorted(directory.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}")):
        if SEGMENT_NAME.fullmatch(path.name) is None:
            continue
        _, offset = read_checkpoint(path.with_suffix(CHECKPOINT_SUFFIX))
        with contextlib.suppress(FileNotFoundError), path.open("rb") as file:
            reader = SegmentReader(file)
            # As recovery does: a checkpoint that points outside the records is not believed.
            start = offset if reader.start < offset <= reader.size else reader.start
            for record, _spooled_at, _size in reader.records(start):
                yield record


def read_records(path: Path, offset: int, limit: int) -> list[tuple[OutboundRecord, float, int]]:
    """Up to `limit` readable records of segment `path` from `offset` (none when the file is gone)."""
    found: list[tuple[OutboundRecord, float, int]] = []
    with contextlib.suppress(FileNotFoundError), path.open("rb") as file:
        for item in SegmentReader(file).records(offset):
            found.append(item)
            if len(found) == limit:
                break
    return found


def quarantine(file: BinaryIO, path: Path, start: int, end: int) -> Path:
    """Copy bytes [start, end) of segment `path` (open as `file`) into a new quarantine file beside it,
    fsync'd, and count it. The segment itself is not changed."""
    target = path.with_name(f"{QUARANTINE_PREFIX}{path.stem}-from-{start}-{time.time_ns()}.bin")
    file.seek(start)
    left = end - start
    with open(target, "xb", opener=private) as out:
        while left > 0 and (chunk := file.read(min(left, COPY_CHUNK_BYTES))):
            out.write(chunk)
            left -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    fsync_directory(path.parent)
    copied = end - start - left
    metrics.SPOOL_TORN_RECORDS.inc()
    metrics.SPOOL_QUARANTINED_BYTES.inc(copied)
    log.error(
        "spool segment damaged: its readable records are kept, the rest was moved to a quarantine file",
        extra={"segment": path.name, "offset": start, "bytes": copied, "quarantine": str(target)},
    )
    return target


def quarantine_range(path: Path, start: int, end: int) -> Path | None:
    """quarantine() for a segment in use; None when its file is gone (nothing left to keep)."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return None
    with file:
        return quarantine(file, path, start, end)
