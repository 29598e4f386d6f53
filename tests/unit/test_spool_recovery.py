"""Nothing on disk stops the spool: torn, zero-filled, oversized, malformed or foreign data is moved aside
(quarantined and counted) and everything readable still reaches Kafka. Also: the spool's files are private,
it does not rotate a segment per record at a trickle, and close() never cuts a write short."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from bridge import metrics
from bridge.publish import spool as spool_module
from bridge.publish.drainer import Drainer
from bridge.publish.rejected import RejectedRecords
from bridge.publish.spool import (
    RECORD_HEAD,
    SEGMENT_MAGIC,
    Spool,
    SpoolError,
    encode_record,
    frame,
)
from bridge.routing import OutboundRecord

TOPIC = "idaas.user"


def record(index: int, topic: str = TOPIC) -> OutboundRecord:
    return OutboundRecord(topic, f"k{index}".encode(), f"v{index}".encode(), [("id", b"x")], 1_000 + index)


async def opened(directory: Path, segment_bytes: int = 1 << 20, idle_seconds: float = 60.0) -> Spool:
    spool = Spool(directory, 10 << 20, segment_bytes, idle_seconds=idle_seconds)
    await spool.open()
    return spool


async def spooled(directory: Path, count: int, segment_bytes: int = 1 << 20) -> None:
    """A spool directory holding records 0..count-1, as a stopped bridge leaves it."""
    spool = await opened(directory, segment_bytes)
    for i in range(count):
        await spool.append(record(i))
    await spool.close(5)


async def drained(spool: Spool) -> list[bytes]:
    """Drain like the drainer (read, 'publish', confirm); the values published."""
    published: list[bytes] = []
    while segments := spool.drainable_segments():
        batch = await spool.next_batch(segments[0], 500)
        published += [item.record.value for item in batch]
        await spool.confirm(batch, None)
    return published


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("segment-*.log"))


def quarantined(directory: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(directory.glob("quarantine-*.bin"))]


def counter(metric: object) -> float:
    return float(metric._value.get())  # type: ignore[attr-defined]


def values(*indexes: int) -> list[bytes]:
    return [f"v{i}".encode() for i in indexes]


def test_a_zero_filled_tail_is_quarantined_and_every_record_before_it_drains(tmp_path: Path) -> None:
    async def scenario() -> None:
        await spooled(tmp_path, 5)
        with segments(tmp_path)[-1].open("ab") as segment:
            segment.write(bytes(64))  # the file grew in a crash, its data never reached the disk
        quarantined_before = counter(metrics.SPOOL_QUARANTINED_BYTES)
        spool = await opened(tmp_path)
        assert spool.pending_records == 5
        assert await drained(spool) == values(0, 1, 2, 3, 4)
        await spool.close(5)
        assert quarantined(tmp_path) == [bytes(64)]
        assert counter(metrics.SPOOL_QUARANTINED_BYTES) == quarantined_before + 64

        again = await opened(tmp_path)  # the segment was cut where it broke: nothing to quarantine again
        assert again.pending_records == 0 and len(quarantined(tmp_path)) == 1
        await again.close(5)

    asyncio.run(scenario())


def test_a_corrupt_length_is_bounded_before_anything_is_read_for_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        await spooled(tmp_path, 3)
        with segments(tmp_path)[-1].open("ab") as segment:
            segment.write(struct.pack("<II", 0xFFFFFFF0, 0) + b"rest of a torn frame")
        tracemalloc.start()
        try:
            spool = await opened(tmp_path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20, f"{peak} bytes allocated to read a 4 GiB length"
        assert await drained(spool) == values(0, 1, 2)
        await spool.close(5)

    asyncio.run(scenario())


def malformed() -> bytes:
    """A frame whose checksum is right but whose record claims a 60000-byte topic in 40 bytes."""
    return frame(RECORD_HEAD.pack(1, 2.0, 60_000, 0, 0, 0) + b"x" * 12)


def test_a_malformed_record_at_a_segment_head_neither_crashes_open_nor_stops_the_drain(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        await spooled(tmp_path, 4, segment_bytes=1)  # one record per segment
        first = segments(tmp_path)[0]
        data = first.read_bytes()
        first.write_bytes(SEGMENT_MAGIC + malformed() + data[len(SEGMENT_MAGIC) :])
        spool = await opened(tmp_path)
        assert spool.pending_records == 3
        assert await drained(spool) == values(1, 2, 3)
        await spool.close(5)
        assert quarantined(tmp_path) == [malformed() + data[len(SEGMENT_MAGIC) :]]  # kept for a human

    asyncio.run(scenario())


def test_a_malformed_record_after_a_checkpoint_does_not_stop_the_drain(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = await opened(tmp_path)
        for i in range(5):
            await spool.append(record(i))
        await spool.confirm(await spool.next_batch(spool.drainable_segments()[0], 3), None)
        await spool.close(5)
        tail = malformed() + encode_record(record(5), 0.0)
        with segments(tmp_path)[-1].open("ab") as segment:
            segment.write(tail)

        reopened = await opened(tmp_path)
        assert reopened.pending_records == 2
        assert await drained(reopened) == values(3, 4)
        await reopened.close(5)
        assert quarantined(tmp_path) == [tail]

    asyncio.run(scenario())


def test_a_record_corrupted_while_the_bridge_runs_is_quarantined_and_the_drain_goes_on(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        spool = await opened(tmp_path, segment_bytes=1)
        for i in range(3):
            await spool.append(record(i))
        first = segments(tmp_path)[0]
        data = bytearray(first.read_bytes())
        data[-1] ^= 0xFF
        first.write_bytes(data)
        assert await drained(spool) == values(1, 2)
        assert quarantined(tmp_path) == [bytes(data[len(SEGMENT_MAGIC) :])]
        assert not first.exists()
        await spool.close(5)

    asyncio.run(scenario())


def test_files_and_directories_the_spool_did_not_write_are_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        await spooled(tmp_path, 2)
        (tmp_path / "segment-backup.log").write_bytes(b"an operator's copy")
        (tmp_path / "segment-000000000007.log").mkdir()
        (tmp_path / "notes.txt").write_text("hello")
        with caplog.at_level(logging.WARNING, logger="bridge.publish.spool"):
            spool = await opened(tmp_path)
        ignored = {record.path for record in caplog.records if "ignored" in record.getMessage()}  # type: ignore[attr-defined]
        assert {Path(path).name for path in ignored} == {
            "segment-backup.log",
            "segment-000000000007.log",
            "notes.txt",
        }
        await spool.append(record(2))  # a new segment numbered past the directory, not onto it
        assert await drained(spool) == values(0, 1, 2)
        await spool.close(5)
        assert (tmp_path / "segment-backup.log").read_bytes() == b"an operator's copy"
        assert (tmp_path / "segment-000000000007.log").is_dir()

    asyncio.run(scenario())


def test_a_segment_the_disk_cannot_read_is_left_in_place_and_the_spool_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        await spooled(tmp_path, 2, segment_bytes=1)  # segments 1 and 2
        real_reader = spool_module.SegmentReader

        def failing_reader(file: BinaryIO) -> spool_module.SegmentReader:
            if file.name.endswith("segment-000000000001.log"):
                raise OSError(5, "Input/output error")
            return real_reader(file)

        with monkeypatch.context() as patch:
            patch.setattr(spool_module, "SegmentReader", failing_reader)
            spool = await opened(tmp_path)
        assert await drained(spool) == values(1)
        await spool.close(5)
        again = await opened(tmp_path)  # the disk recovered: nothing was lost
        assert await drained(again) == values(0)
        await again.close(5)

    asyncio.run(scenario())


class AcceptingPublisher:
    """Acknowledges every record at once (these tests are about the disk, not Kafka)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []

    def produce(self, topic: str, key: bytes, value: bytes, *rest: object) -> asyncio.Future[None]:
        self.records.append((topic, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def reachable(self) -> bool:
        return True


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def test_a_record_for_a_topic_no_longer_configured_goes_to_the_rejected_file_not_to_kafka(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        spool = await opened(tmp_path)
        for i, topic in enumerate([TOPIC, "idaas.retired", TOPIC]):
            await spool.append(record(i, topic))
        publisher = AcceptingPublisher()
        rejected = RejectedRecords(tmp_path)
        drainer = Drainer(
            spool,
            publisher,  # type: ignore[arg-type]
            rejected,
            [TOPIC, "idaas.admin"],
            ack_wait=5.0,
        )
        drainer.start()
        await until(lambda: spool.pending_records == 0)
        await drainer.stop()
        await spool.close(5)
        assert publisher.records == [(TOPIC, b"v0"), (TOPIC, b"v2")]
        [kept] = rejected.read()
        assert (kept.record.topic, kept.record.value, kept.reason) == (
            "idaas.retired",
            b"v1",
            "topic_not_configured",
        )

    asyncio.run(scenario())


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_spool_directory_and_every_file_in_it_are_private(tmp_path: Path, umask_022: None) -> None:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o755)  # as an earlier version created it

    async def scenario() -> None:
        await spooled(directory, 3)
        with segments(directory)[-1].open("ab") as segment:
            segment.write(bytes(16))
        spool = await opened(directory)  # quarantines the zero tail
        for i in range(3, 6):
            await spool.append(record(i))
        number = spool.drainable_segments()[-1]
        await spool.confirm(await spool.next_batch(number, 1), None)  # a checkpoint
        RejectedRecords(directory).keep(record(9), SpoolError("io_error", "a test"))
        await spool.close(5)

    asyncio.run(scenario())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = {path.suffix or path.name for path in directory.iterdir()}
    assert {".log", ".acked", ".bin", ".jsonl", ".lock"} <= names
    modes = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in directory.iterdir()}
    assert set(modes.values()) == {oct(0o600)}, modes


def test_a_trickle_of_drained_records_does_not_rotate_a_segment_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs: list[Path] = []
    real_fsync_directory = spool_module.fsync_directory

    def counting_fsync_directory(directory: Path) -> None:
        syncs.append(directory)
        real_fsync_directory(directory)

    monkeypatch.setattr(spool_module, "fsync_directory", counting_fsync_directory)

    async def scenario() -> None:
        spool = await opened(tmp_path, idle_seconds=2.0)
        drainer = Drainer(
            spool,
            AcceptingPublisher(),  # type: ignore[arg-type]
            RejectedRecords(tmp_path),
            [TOPIC],
            ack_wait=5.0,
        )
        drainer.start()
        for i in range(20):  # spool_first at a trickle: each record is drained before the next arrives
            await spool.append(record(i))
            await until(lambda: spool.pending_records == 0)
        # One segment (created at start) took all 20 records: before, 21 segments and 21 directory fsyncs.
        assert len(syncs) == 1 and [path.name for path in segments(tmp_path)] == ["segment-000000000001.log"]
        # Once idle, the drained segment is rotated away (its disk space back) on a timer.
        await until(lambda: [path.name for path in segments(tmp_path)] == ["segment-000000000002.log"])
        await drainer.stop()
        await spool.close(5)

    asyncio.run(scenario())


def slow_write(release: threading.Event) -> Callable[[BinaryIO, bytes], None]:
    real_write_and_sync = spool_module.write_and_sync

    def write(file: BinaryIO, data: bytes) -> None:
        release.wait(10)
        real_write_and_sync(file, data)

    return write


def test_close_waits_for_a_write_in_progress_instead_of_closing_the_file_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    async def scenario() -> None:
        spool = await opened(tmp_path)
        monkeypatch.setattr(spool_module, "write_and_sync", slow_write(release))
        append = asyncio.create_task(spool.append(record(1)))
        await asyncio.sleep(0.1)  # the writer's thread is in the write now
        threading.Timer(0.3, release.set).start()
        await spool.close(5)
        await append  # answered: its record is durable
        with pytest.raises(SpoolError) as refused:
            await spool.append(record(2))
        assert refused.value.reason == "closed"

        monkeypatch.undo()
        reopened = await opened(tmp_path)
        assert await drained(reopened) == values(1)
        await reopened.close(5)

    asyncio.run(scenario())


def test_close_keeps_to_its_deadline_when_the_disk_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    async def scenario() -> None:
        spool = await opened(tmp_path)
        monkeypatch.setattr(spool_module, "write_and_sync", slow_write(release))
        append = asyncio.create_task(spool.append(record(1)))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await spool.close(0.5)
        assert time.monotonic() - started < 2.5
        with pytest.raises(SpoolError) as refused:
            await append  # not known to be durable: a 503, so IDaaS delivers it again
        assert refused.value.reason == "closed"
        release.set()

    asyncio.run(scenario())


def legacy_segment(records: list[OutboundRecord]) -> bytes:
    """A segment as the first format wrote it: no header; the crc32 covers only the payload."""
    payloads = [encode_record(item, 0.0)[8:] for item in records]
    return b"".join(struct.pack("<II", len(p), zlib.crc32(p)) + p for p in payloads)


def test_segments_of_the_first_format_are_still_read_with_the_same_checks(tmp_path: Path) -> None:
    async def scenario() -> None:
        data = legacy_segment([record(0), record(1), record(2)])
        (tmp_path / "segment-000000000004.log").write_bytes(data + bytes(24))  # and a zero-filled tail
        first = len(legacy_segment([record(0)]))
        (tmp_path / "segment-000000000004.acked").write_text(f"1 {first}")
        spool = await opened(tmp_path)
        assert await drained(spool) == values(1, 2)
        await spool.append(record(3))  # new records go to a new segment of the current format
        assert segments(tmp_path)[-1].read_bytes().startswith(SEGMENT_MAGIC)
        assert await drained(spool) == values(3)
        await spool.close(5)
        assert quarantined(tmp_path) == [bytes(24)]

    asyncio.run(scenario())
