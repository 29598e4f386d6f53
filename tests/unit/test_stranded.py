"""Changing server.workers strands no spooled record: each worker takes over what a count that no longer
exists left behind (real spools on a real file system)."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import pytest

from bridge.config import ConfigError
from bridge.publish.spool import Spool
from bridge.publish.spool_root import lock_root
from bridge.publish.stranded import hold, locked, spool_directory, stranded_directories, take_over
from tests.unit.test_spool import drain_all, record

SEGMENT = 64 * 1024


async def spool_records(directory: Path, keys: range, confirm_first: int = 0) -> None:
    """Spool `keys` in `directory` and leave them there (the first `confirm_first` confirmed by Kafka)."""
    spool = Spool(directory, max_bytes=10_000_000, segment_bytes=SEGMENT)
    await spool.open()
    await asyncio.gather(*(spool.append(record(i)) for i in keys))
    if confirm_first:
        batch = await spool.next_batch(spool.drainable_segments()[0], confirm_first)
        await spool.confirm(batch, None)
    await spool.close(5)


async def drained(directory: Path) -> list[bytes]:
    spool = Spool(directory, max_bytes=10_000_000, segment_bytes=SEGMENT)
    await spool.open()
    keys = [item.key for item in await drain_all(spool)]
    await spool.close(5)
    return keys


def keys(numbers: range) -> list[bytes]:
    return [f"user-{i}".encode() for i in numbers]


def test_each_worker_takes_the_directories_of_a_larger_count_by_modulo(tmp_path: Path) -> None:
    for j in range(5):
        spool_directory(tmp_path, j).mkdir()
    (tmp_path / "worker-x").mkdir()  # not a worker's
    names = {i: [p.name for p in stranded_directories(tmp_path, 2, i)] for i in range(2)}
    assert names == {0: [tmp_path.name, "worker-2", "worker-4"], 1: ["worker-3"]}
    assert [p.name for p in stranded_directories(tmp_path, 1, None)] == [f"worker-{j}" for j in range(5)]


def test_one_to_two_to_one_strands_nothing_and_keeps_confirmed_records_confirmed(tmp_path: Path) -> None:
    async def scenario() -> None:
        # One process spooled 0-49, Kafka confirmed the first 10.
        await spool_records(tmp_path, range(50), confirm_first=10)
        # Two workers: worker 0 takes the single-process segments, then both spool more.
        take_over(tmp_path, 2, 0)
        take_over(tmp_path, 2, 1)
        assert not list(tmp_path.glob("segment-*"))
        await spool_records(spool_directory(tmp_path, 0), range(50, 60))
        await spool_records(spool_directory(tmp_path, 1), range(60, 70))
        # Back to one process: it takes both workers' directories and removes them.
        assert take_over(tmp_path, 1, None) >= 2
        assert not list(tmp_path.glob("worker-*"))
        assert sorted(await drained(tmp_path)) == sorted(keys(range(10, 70)))

    asyncio.run(scenario())


def test_a_smaller_worker_count_drains_the_larger_counts_directories(tmp_path: Path) -> None:
    async def scenario() -> None:
        for j in range(3):
            await spool_records(spool_directory(tmp_path, j), range(j * 10, j * 10 + 10))
        take_over(tmp_path, 2, 0)  # worker-2 goes to worker 0 (2 mod 2)
        take_over(tmp_path, 2, 1)
        assert sorted(p.name for p in tmp_path.glob("worker-*")) == ["worker-0", "worker-1"]
        assert await drained(spool_directory(tmp_path, 0)) == keys(range(0, 10)) + keys(range(20, 30))
        assert await drained(spool_directory(tmp_path, 1)) == keys(range(10, 20))

    asyncio.run(scenario())


def test_a_directory_another_process_holds_is_left_alone(tmp_path: Path) -> None:
    async def scenario() -> None:
        held = spool_directory(tmp_path, 3)
        await spool_records(held, range(5))
        descriptor = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            # flock is per open file description: this process's second open counts as another holder.
            assert take_over(tmp_path, 2, 1) == 0
            assert len(list(held.glob("segment-*.log"))) == 1
        finally:
            os.close(descriptor)
        assert take_over(tmp_path, 2, 1) == 1
        assert await drained(spool_directory(tmp_path, 1)) == keys(range(5))

    asyncio.run(scenario())


def test_a_workers_directory_in_use_is_a_start_up_error_not_a_failing_worker(tmp_path: Path) -> None:
    held = spool_directory(tmp_path, 0)
    held.mkdir()
    with locked(held) as taken:
        assert taken
        with pytest.raises(ConfigError) as refused:
            hold(held)
    assert str(refused.value) == (
        f"spool directory {held} is in use by another process (`idaas-bridge replay spool` of that "
        "directory); let it finish first"
    )
    os.close(hold(held))


def test_a_directory_a_replay_left_its_lock_file_in_is_still_taken_over_and_removed(tmp_path: Path) -> None:
    async def scenario() -> None:
        stranded = spool_directory(tmp_path, 2)
        await spool_records(stranded, range(3))
        os.close(lock_root(stranded, "replay spool"))  # `replay spool` pointed at one worker's directory
        assert take_over(tmp_path, 2, 0) == 1
        assert not stranded.exists()
        assert await drained(spool_directory(tmp_path, 0)) == keys(range(3))

    asyncio.run(scenario())
