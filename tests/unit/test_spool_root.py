"""One bridge per spool.path: the lock file a bridge holds for its life (real processes, a real file
system)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bridge.config import ConfigError, Sources
from bridge.publish.spool import Spool
from bridge.publish.spool_root import LOCK_FILE, SERVE, Holder, RootInUse, hold_root, lock_root

#: Takes the lock as `command` (argv 2) and says so; with "fork" (argv 3) it forks a child first, which
#: inherits the lock and outlives it, as a worker outlives a serving process that died.
HOLDER = """
import os, sys, time
from pathlib import Path
from bridge.publish.spool_root import lock_root
lock_root(Path(sys.argv[1]), sys.argv[2])
if sys.argv[3] == "fork":
    child = os.fork()
    if child == 0:
        for descriptor in (0, 1, 2):  # the test reads its parent's output to the end
            os.close(descriptor)
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    os._exit(0)
print("held", flush=True)
sys.stdin.read()
"""
#: How long a process that was killed may take to be gone.
TIMEOUT = 10.0
CONFIG = "/etc/idaas-bridge/bridge.yaml"
#: spool.path set in the configuration file.
SOURCES = Sources(file=CONFIG, in_file=frozenset({"spool.path"}))


@contextmanager
def held_by_process(root: Path, command: str = SERVE) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), command, "stay"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "held\n"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_second_taker_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    descriptor = lock_root(tmp_path, SERVE)
    try:
        # flock is per open file description: this process's second open counts as another holder.
        with pytest.raises(RootInUse) as refused:
            lock_root(tmp_path, SERVE)
        assert refused.value.holder == Holder(os.getpid(), socket.gethostname(), SERVE)
        assert str(refused.value) == f"{tmp_path} is in use by another bridge (pid {os.getpid()})"
    finally:
        os.close(descriptor)
    os.close(lock_root(tmp_path, SERVE))


def test_the_lock_is_released_when_its_holder_exits_however_it_ends(tmp_path: Path) -> None:
    with held_by_process(tmp_path) as holder:
        with pytest.raises(RootInUse) as refused:
            lock_root(tmp_path, SERVE)
        assert refused.value.holder is not None and refused.value.holder.pid == holder.pid
    # Killed (SIGKILL): the kernel released it, nothing on disk says otherwise.
    os.close(lock_root(tmp_path, SERVE))


def test_a_forked_child_keeps_the_lock_after_its_parent_died(tmp_path: Path) -> None:
    """Workers inherit the serving process's lock: a worker still shutting down after its parent died
    still spools, so the path stays held until the last of them is gone."""
    parent = subprocess.run(
        [sys.executable, "-c", HOLDER, str(tmp_path), SERVE, "fork"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    child = int(parent.stdout)
    try:
        with pytest.raises(RootInUse):
            lock_root(tmp_path, SERVE)
    finally:
        os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            os.close(lock_root(tmp_path, SERVE))
            return
        except RootInUse:
            assert time.monotonic() < deadline, "the lock outlived the last process holding it"
            time.sleep(0.05)


def test_a_second_bridge_is_told_the_path_the_setting_and_the_holder(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    root.mkdir()
    with held_by_process(root) as holder, pytest.raises(ConfigError) as refused:
        hold_root(str(root), SOURCES)
    assert str(refused.value) == (
        f"spool.path = '{root}' in {CONFIG}: in use by another bridge (pid {holder.pid}); give each bridge "
        "its own spool.path"
    )


def test_a_replay_holding_the_path_is_named_and_waited_for(tmp_path: Path) -> None:
    with held_by_process(tmp_path, "replay spool") as holder, pytest.raises(ConfigError) as refused:
        hold_root(str(tmp_path), SOURCES)
    assert str(refused.value) == (
        f"spool.path = '{tmp_path}' in {CONFIG}: in use by `idaas-bridge replay spool` (pid {holder.pid}); "
        "let it finish first"
    )


def test_a_holder_that_wrote_nothing_readable_is_still_refused_without_a_pid(tmp_path: Path) -> None:
    descriptor = os.open(tmp_path / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        os.write(descriptor, b"not the bridge's")
        with pytest.raises(ConfigError) as refused:
            hold_root(str(tmp_path), SOURCES)
        assert str(refused.value) == (
            f"spool.path = '{tmp_path}' in {CONFIG}: in use by another bridge; give each bridge its own "
            "spool.path"
        )
    finally:
        os.close(descriptor)


def test_a_holder_on_another_host_is_named_with_it() -> None:
    assert str(Holder(1234, "bridge-1", SERVE)) == "another bridge (pid 1234 on bridge-1)"


def test_the_lock_file_is_the_spools_own_not_a_stray_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path, max_bytes=1_000_000, segment_bytes=64 * 1024)
        await spool.open()
        await spool.close(5)

    (tmp_path / "notes.txt").write_text("an operator's")
    descriptor = lock_root(tmp_path, SERVE)
    try:
        with caplog.at_level("WARNING", logger="bridge.publish.spool"):
            asyncio.run(scenario())
    finally:
        os.close(descriptor)
    ignored = [record.path for record in caplog.records if "did not write" in record.getMessage()]  # type: ignore[attr-defined]
    assert ignored == [str(tmp_path / "notes.txt")]
