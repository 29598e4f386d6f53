"""The durable spool on a real filesystem: group commit, recovery, torn tails, limits, segment deletion."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge import metrics
from bridge.publish.spool import Spool, SpoolError, decode_record, encode_record
from bridge.routing import OutboundRecord


def record(index: int, size: int = 100) -> OutboundRecord:
    return OutboundRecord(
        topic="idaas.user",
        key=f"user-{index}".encode(),
        value=b"v" * size,
        headers=[("idaas-delivery-id", f"id-{index}".encode()), ("schema", b"idaas.event/1")],
        timestamp_ms=1_700_000_000_000 + index,
    )


def sample_count(metric: object) -> float:
    for family in metric.collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    return 0.0


def test_records_round_trip_through_the_binary_encoding() -> None:
    original = record(7)
    frame = encode_record(original, 123.5)
    decoded, spooled_at = decode_record(frame[8:])
    assert decoded == original and spooled_at == 123.5


async def drain_all(spool: Spool) -> list[OutboundRecord]:
    out: list[OutboundRecord] = []
    while spool.drainable_segments():
        batch = await spool.next_batch(spool.drainable_segments()[0], 1000)
        await spool.confirm(batch, None)
        out.extend(item.record for item in batch)
        await asyncio.sleep(0.01)
    return out


def test_concurrent_appends_share_fsyncs_and_survive_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        fsyncs_before = sample_count(metrics.SPOOL_FSYNC_DURATION)
        spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=64 * 1024)
        await spool.open()
        await asyncio.gather(*(spool.append(record(i)) for i in range(500)))
        fsyncs = sample_count(metrics.SPOOL_FSYNC_DURATION) - fsyncs_before
        assert 1 <= fsyncs < 500, fsyncs
        assert spool.pending_records == 500
        await spool.close(5)

        reopened = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=64 * 1024)
        await reopened.open()
        assert reopened.pending_records == 500
        drained = await drain_all(reopened)
        assert [r.key for r in drained] == [f"user-{i}".encode() for i in range(500)]
        assert reopened.pending_records == 0
        await reopened.close(5)
        assert len(list(tmp_path.glob("segment-*.log"))) <= 1

    asyncio.run(scenario())


def test_a_torn_tail_is_skipped_and_counted_not_fatal(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1024 * 1024)
        await spool.open()
        for i in range(10):
            await spool.append(record(i))
        await spool.close(5)
        segment = sorted(tmp_path.glob("segment-*.log"))[-1]
        data = segment.read_bytes()
        segment.write_bytes(data[:-30])  # the last record loses its end, as in a crash mid-write
        torn_before = metrics.SPOOL_TORN_RECORDS._value.get()
        reopened = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1024 * 1024)
        await reopened.open()
        assert reopened.pending_records == 9
        assert metrics.SPOOL_TORN_RECORDS._value.get() == torn_before + 1
        assert [r.key for r in await drain_all(reopened)] == [f"user-{i}".encode() for i in range(9)]
        await reopened.close(5)

    asyncio.run(scenario())


def test_a_corrupt_record_ends_the_readable_part_of_its_segment(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1024 * 1024)
        await spool.open()
        for i in range(3):
            await spool.append(record(i))
        await spool.close(5)
        segment = sorted(tmp_path.glob("segment-*.log"))[-1]
        data = bytearray(segment.read_bytes())
        data[len(data) // 2] ^= 0xFF
        segment.write_bytes(bytes(data))
        reopened = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1024 * 1024)
        await reopened.open()
        assert reopened.pending_records == 1
        await reopened.close(5)

    asyncio.run(scenario())


def test_a_full_spool_refuses_instead_of_accepting(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path, max_bytes=64 * 1024, segment_bytes=64 * 1024)
        await spool.open()
        accepted = 0
        with pytest.raises(SpoolError) as raised:
            for i in range(10_000):
                assert not spool.full
                await spool.append(record(i, size=1000))
                accepted += 1
        assert raised.value.reason == "full"
        assert 0 < accepted < 70 and spool.used_bytes <= 64 * 1024
        assert spool.full  # for readiness, though a few bytes are still free
        await drain_all(spool)
        assert not spool.full
        await spool.append(record(0, size=1000))
        await spool.close(5)

    asyncio.run(scenario())


def test_segments_roll_and_are_deleted_once_confirmed(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=64 * 1024)
        await spool.open()
        for i in range(300):
            await spool.append(record(i, size=1000))
        assert len(spool.drainable_segments()) >= 4
        first = spool.drainable_segments()[0]
        batch = await spool.next_batch(first, 10_000)
        await spool.confirm(batch, None)
        assert first not in spool.drainable_segments()
        assert not (tmp_path / f"segment-{first:012d}.log").exists()
        await spool.close(5)

    asyncio.run(scenario())


def test_confirmed_progress_survives_a_restart_so_little_is_published_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1024 * 1024)
        await spool.open()
        for i in range(100):
            await spool.append(record(i))
        number = spool.drainable_segments()[0]
        await spool.confirm(await spool.next_batch(number, 60), None)
        await spool.close(5)  # as after a crash: the segment is still active, 60 of 100 confirmed

        reopened = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1024 * 1024)
        await reopened.open()
        assert reopened.pending_records == 40
        assert [r.key for r in await drain_all(reopened)] == [f"user-{i}".encode() for i in range(60, 100)]
        await reopened.close(5)

    asyncio.run(scenario())
