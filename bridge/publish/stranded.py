"""Spool layouts per worker count, and taking over what a worker count that no longer exists left behind.

One process spools in `spool.path` itself; with `server.workers` = N each worker i spools in
`spool.path/worker-<i>`. When N changes, directories nobody serves any more would keep their records for
ever, so a worker (or the single process) takes them over at its start, before its spool opens:
- worker i of N: every `worker-<j>` with j >= N and j mod N == i, and (worker 0) the single-process
  layout's segments in `spool.path` itself;
- one process: every `worker-<j>`.
Taking over moves the segment files (with their `.acked` checkpoints and any quarantine files) into the
worker's own directory, numbered after its own segments, then removes the emptied directory: the spool
then recovers and drains them like its own, with its one drainer and its gauges. A rename within one file
system is atomic, so a crash mid-way leaves each segment in exactly one of the two directories (a
checkpoint that did not follow its segment only means its records are published again: at least once).

Each directory is taken under an exclusive `flock`, and a worker holds the lock on its own directory for
its life (`hold`), so a directory still served by a live process, or being taken over by a restarted
worker's predecessor, is left alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from bridge.config import Sources
from bridge.publish.spool import (
    CHECKPOINT_STAGING_SUFFIX,
    CHECKPOINT_SUFFIX,
    DIRECTORY_MODE,
    QUARANTINE_PREFIX,
    SEGMENT_NAME,
    SEGMENT_PREFIX,
    SEGMENT_SUFFIX,
    fsync_directory,
)

log = logging.getLogger(__name__)

WORKER_DIRECTORY: Final = re.compile(r"worker-(\d+)")


def make_root(path: str, sources: Sources) -> Path:
    """spool.path, created if missing, before anything is served: the root of every layout, of the records
    Kafka refused and (with workers) of the metric files. One that cannot be used is a start-up error
    naming the setting, not a traceback from the first thing that writes there."""
    root = Path(path)
    try:
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file, not a directory")
        root.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable by this user")
    except OSError as exc:
        raise sources.error(
            "spool.path",
            f"cannot spool there: {exc.strerror or exc}; point spool.path to a writable directory (in a "
            "container, the spool volume)",
            path,
        ) from None
    return root


def spool_directory(root: Path, worker: int | None) -> Path:
    """Where a worker (None: the single process) spools."""
    return root if worker is None else root / f"worker-{worker}"


def stranded_directories(root: Path, workers: int, worker: int | None) -> list[Path]:
    """The directories `worker` of `workers` takes over (root itself stands for its own segments)."""
    found: list[Path] = []
    if worker == 0:
        found.append(root)
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(root.iterdir()):
            name = WORKER_DIRECTORY.fullmatch(entry.name)
            if name is None or not entry.is_dir() or entry.is_symlink():
                continue
            number = int(name.group(1))
            if worker is None or (number >= workers and number % workers == worker):
                found.append(entry)
    return found


def _lock(directory: Path) -> int | None:
    """An exclusive flock on `directory`: the descriptor holding it, None if another process holds it."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException as exc:
        os.close(descriptor)
        if isinstance(exc, BlockingIOError):
            return None
        raise
    return descriptor


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[bool]:
    """An exclusive flock on `directory` for the block: True if taken, False if another process holds it."""
    descriptor = _lock(directory)
    try:
        yield descriptor is not None
    finally:
        if descriptor is not None:
            os.close(descriptor)


def hold(directory: Path) -> int:
    """Create `directory` and lock it for the life of the process (the descriptor is never closed)."""
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    descriptor = _lock(directory)
    if descriptor is None:
        raise RuntimeError(f"spool directory {directory} is in use by another process")
    return descriptor


def take_over(root: Path, workers: int, worker: int | None) -> int:
    """Move every stranded directory's segments into this worker's own; the number of segments moved.
    Blocking file-system work: runs before the worker's event loop starts."""
    own = spool_directory(root, worker)
    own.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    moved = 0
    for directory in stranded_directories(root, workers, worker):
        with locked(directory) as taken:
            if not taken:
                log.warning(
                    "stranded spool directory in use by another process; left alone",
                    extra={"directory": str(directory)},
                )
                continue
            count = _move_segments(directory, own)
            if directory != root:
                _remove(directory)
        if count:
            log.info(
                "took over spooled segments left by another worker count; they drain from here",
                extra={"from": str(directory), "to": str(own), "segments": count},
            )
        moved += count
    return moved


def _numbers(directory: Path) -> list[int]:
    """Segment numbers in use in `directory`, checkpoints included."""
    numbers = []
    for entry in directory.iterdir():
        name = SEGMENT_NAME.fullmatch(entry.with_suffix(SEGMENT_SUFFIX).name)
        if name is not None:
            numbers.append(int(name.group(1)))
    return numbers


def _move_segments(source: Path, target: Path) -> int:
    entries = sorted(source.iterdir())
    segments = [entry for entry in entries if SEGMENT_NAME.fullmatch(entry.name) and entry.is_file()]
    quarantined = [entry for entry in entries if entry.name.startswith(QUARANTINE_PREFIX)]
    if not segments and not quarantined:
        return 0
    number = max(_numbers(target), default=0)
    for segment in segments:
        number += 1
        moved = target / f"{SEGMENT_PREFIX}{number:012d}{SEGMENT_SUFFIX}"
        # The segment first: a checkpoint that did not follow only means publishing again.
        segment.rename(moved)
        checkpoint = segment.with_suffix(CHECKPOINT_SUFFIX)
        if checkpoint.exists():
            checkpoint.rename(moved.with_suffix(CHECKPOINT_SUFFIX))
    for entry in quarantined:
        entry.rename(target / entry.name)
    fsync_directory(target)
    fsync_directory(source)
    return len(segments)


def _remove(directory: Path) -> None:
    """Remove an emptied stranded directory; checkpoints whose segment is gone go with it."""
    for entry in directory.iterdir():
        if entry.suffix in (CHECKPOINT_SUFFIX, CHECKPOINT_STAGING_SUFFIX) and entry.name.startswith(
            SEGMENT_PREFIX
        ):
            entry.unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:
        log.warning(
            "stranded spool directory not removed: it holds files the bridge did not write",
            extra={"directory": str(directory), "files": sorted(entry.name for entry in directory.iterdir())},
        )
