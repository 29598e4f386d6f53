"""The spool and its drainer when the disk fails: a failed write is a 503 that never costs a 2xx'd record,
and neither the writer nor the drainer dies of an error (a dead one would leave every later record waiting
without a word, or hang requests and shutdown)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import BinaryIO

import pytest

from bridge.publish import spool as spool_module
from bridge.publish.drainer import Drainer
from bridge.publish.spool import Spool, SpoolError
from bridge.routing import OutboundRecord


def record(index: int) -> OutboundRecord:
    return OutboundRecord("idaas.user", f"k{index}".encode(), f"v{index}".encode(), [], 1_000 + index)


async def values(spool: Spool) -> list[bytes]:
    """Drain like the drainer (read, 'publish', confirm) and return what was published."""
    published: list[bytes] = []
    while segments := spool.drainable_segments():
        batch = await spool.next_batch(segments[0], 500)
        assert batch, "a segment with unconfirmed records yielded none"
        published += [item.record.value for item in batch]
        await spool.confirm(batch, None)
    return published


async def opened(directory: Path, segment_bytes: int = 1 << 20) -> Spool:
    spool = Spool(directory, 10 << 20, segment_bytes)
    await spool.open()
    return spool


def fsync_fails_after_writing(file: BinaryIO, data: bytes) -> None:
    file.write(data)
    file.flush()
    raise OSError(5, "Input/output error")


def disk_fills_mid_record(file: BinaryIO, data: bytes) -> None:
    file.write(data[:5])
    file.flush()
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("failing_write", [fsync_fails_after_writing, disk_fills_mid_record])
def test_a_failed_write_is_refused_and_never_takes_the_place_of_a_later_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_write: object
) -> None:
    async def scenario() -> None:
        spool = await opened(tmp_path)
        with monkeypatch.context() as patch:
            patch.setattr(spool_module, "write_and_sync", failing_write)
            with pytest.raises(SpoolError) as refused:
                await spool.append(record(1))
        assert refused.value.reason == "io_error"
        await spool.append(record(2))
        await spool.append(record(3))
        assert await values(spool) == [b"v2", b"v3"]
        await spool.append(record(4))
        await spool.close(5)

        reopened = await opened(tmp_path)  # after a restart, the 2xx'd record is still there
        assert await values(reopened) == [b"v4"]
        await reopened.close(5)

    asyncio.run(scenario())


def test_the_writer_survives_a_failed_segment_rotation_and_close_does_not_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def directory_fsync_fails(directory: Path) -> None:
        raise OSError(5, "Input/output error")

    async def scenario() -> None:
        spool = await opened(tmp_path, segment_bytes=1)  # every write rotates
        with monkeypatch.context() as patch:
            patch.setattr(spool_module, "fsync_directory", directory_fsync_fails)
            await spool.append(record(1))  # written and fsync'd; the rotation after it fails
            with pytest.raises(SpoolError):
                await spool.append(record(2))  # the writer retries the rotation first: still failing
        await asyncio.wait_for(spool.append(record(3)), 5)
        assert await values(spool) == [b"v1", b"v3"]
        await asyncio.wait_for(spool.close(5), 6)

    asyncio.run(scenario())


def test_a_checkpoint_left_by_a_crash_is_not_taken_by_a_new_segment_of_the_same_number(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        spool = await opened(tmp_path)
        for i in range(3):
            await spool.append(record(i))
        await spool.confirm(await spool.next_batch(1, 500), None)  # the active segment: checkpoint "3 ..."
        await spool.close(5)
        (tmp_path / "segment-000000000001.log").unlink()  # as a crash between deleting log and checkpoint

        again = await opened(tmp_path)  # empty: numbering starts at 1 again
        for i in range(10, 15):
            await again.append(record(i))
        await again.close(5)  # as a crash before any of them was confirmed

        last = await opened(tmp_path)
        assert await values(last) == [b"v10", b"v11", b"v12", b"v13", b"v14"]
        await last.close(5)

    asyncio.run(scenario())


class AcceptingPublisher:
    """Acknowledges every record at once (this test is about the disk, not Kafka)."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    def produce(self, topic: str, key: bytes, value: bytes, *rest: object) -> asyncio.Future[None]:
        self.values.append(value)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class NoRejected:
    path = Path("rejected.jsonl")

    def publish_gauge(self) -> None:
        pass


def test_the_drainer_outlives_disk_errors_and_corrupt_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def until(condition: object, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():  # type: ignore[operator]
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)

    async def scenario() -> None:
        spool = await opened(tmp_path, segment_bytes=64)  # a few records per segment
        publisher = AcceptingPublisher()
        drainer = Drainer(
            spool,
            publisher,  # type: ignore[arg-type]
            NoRejected(),  # type: ignore[arg-type]
            ["idaas.user"],
            ack_wait=5.0,
        )

        def checkpoint_fails(path: Path, text: str) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(spool_module, "write_checkpoint", checkpoint_fails)
        drainer.start()
        for i in range(3):
            await spool.append(record(i))
        await until(lambda: spool.pending_records == 0)
        monkeypatch.undo()

        # A record corrupted on disk after it was written: the rest of its segment is unreadable. The
        # drain gives that segment up (logged) and goes on with the next one instead of retrying forever.
        await drainer.stop()
        for i in range(10, 16):
            await spool.append(record(i))
        corrupt = spool.drainable_segments()[0]
        path = tmp_path / f"segment-{corrupt:012d}.log"
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
        later = [n for n in spool.drainable_segments() if n != corrupt]
        assert later, "the test needs records behind the corrupt segment"
        drainer.start()
        await until(lambda: spool.pending_records == 0)
        assert b"v15" in publisher.values and len(publisher.values) >= 3 + 1
        await drainer.stop()
        await spool.close(5)

    asyncio.run(scenario())


class SilentPublisher:
    """A broker that never answers (paused): produce() futures never resolve."""

    def produce(self, *args: object) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()


def test_the_drainer_waits_for_acknowledgements_only_until_its_deadline(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = await opened(tmp_path)
        for i in range(3):
            await spool.append(record(i))
        drainer = Drainer(
            spool,
            SilentPublisher(),  # type: ignore[arg-type]
            NoRejected(),  # type: ignore[arg-type]
            ["idaas.user"],
            ack_wait=0.2,
        )
        batch = await spool.next_batch(spool.drainable_segments()[0], 500)
        assert await asyncio.wait_for(drainer._publish(batch), 5) is False  # back off, try again later
        assert spool.pending_records == 3  # nothing unacknowledged leaves the spool
        await spool.close(5)

    asyncio.run(scenario())
