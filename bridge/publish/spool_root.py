"""spool.path: the root of every spool layout (bridge/publish/stranded.py), of the records Kafka refused
(rejected.py), of the backfill's files (bridge/adminapi) and of the workers' metric files; created at
start-up, and held by one bridge at a time.

An event that got a 2xx is never lost only while one process owns the segments it appends, drains and
deletes: two bridges on one spool.path (a copied configuration on a shared volume, `serve` started twice)
would drain and delete each other's segments, and the second one's workers would wipe the first one's
metric files. So `idaas-bridge serve` takes an exclusive, non-blocking flock on LOCK_FILE inside spool.path
before it binds a port or forks a worker, and holds it for its life; a second bridge stops at start-up with
a configuration error naming the holder. A lock file, not the directory itself: the directory's own flock
is what a worker takes while it moves the single-process layout's segments over (stranded.take_over).

Who else takes it, and who need not:
- `idaas-bridge replay spool DIR` (not --dry-run) moves and deletes DIR's segments as a bridge does: it
  takes the lock on DIR and refuses while a bridge (or another replay) holds it.
- `replay rejected` (`rejected --replay`), `backfill` and `check-config --connect` are meant to run beside
  the bridge and write only their own files, each guarded where it needs it: rejected.jsonl by
  rejected.lock, a webhook's backfill by its backfill-<webhook>.lock (which the bridge's automatic
  backfill takes too), the spool check by a temporary file of its own. Dry runs only read.

The lock is per open file description: workers forked by the serving process share it, so the path stays
held until the last of them exits (a worker still shutting down after its parent died still spools), and a
restarted worker needs nothing. The holder's pid and host name are written into the file after the lock is
taken, for the message a second bridge prints; a bridge that reads it between another's lock and write
(microseconds) names no pid, never a wrong decision.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from bridge.config import Sources
from bridge.publish.spool import DIRECTORY_MODE, FILE_MODE

#: In spool.path; the spool's OTHER_FILES pattern knows it.
LOCK_FILE: Final = "bridge.lock"
#: What the holder writes into LOCK_FILE is a short line; more than this is not the bridge's.
HOLDER_BYTES: Final = 4096
#: The `command` of a serving bridge.
SERVE: Final = "serve"


@dataclass(frozen=True)
class Holder:
    """Who holds LOCK_FILE, as it wrote there."""

    pid: int
    host: str
    command: str

    def __str__(self) -> str:
        what = "another bridge" if self.command == SERVE else f"`idaas-bridge {self.command}`"
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"{what} (pid {self.pid}{where})"


class RootInUse(Exception):
    """Another process holds spool.path's LOCK_FILE; `holder` as it wrote there (None if unreadable)."""

    def __init__(self, root: Path, holder: Holder | None) -> None:
        self.root = root
        self.holder = holder
        super().__init__(f"{root} is in use by {self.holder_text}")

    @property
    def holder_text(self) -> str:
        return str(self.holder) if self.holder is not None else "another bridge"

    @property
    def by_bridge(self) -> bool:
        """Whether a serving bridge holds it (an unreadable holder is taken for one), not a command."""
        return self.holder is None or self.holder.command == SERVE


def make_root(path: str, sources: Sources) -> Path:
    """spool.path, created if missing, before anything is served. One that cannot be used is a start-up
    error naming the setting, not a traceback from the first thing that writes there."""
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


def lock_root(root: Path, command: str) -> int:
    """Take `root`'s LOCK_FILE (exclusive, non-blocking) for `command`: the descriptor that holds it.
    RootInUse when another open of the file holds it; OSError when it cannot be locked at all."""
    descriptor = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(descriptor)
        os.close(descriptor)
        raise RootInUse(root, holder) from None
    except BaseException:
        os.close(descriptor)
        raise
    line = orjson.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command}) + b"\n"
    # Only for the message of a process kept out: a spool volume full of records must not stop the bridge
    # that would drain it. Written over the old line, then cut: no block to allocate once the file has one.
    with contextlib.suppress(OSError):
        os.pwrite(descriptor, line, 0)
        os.ftruncate(descriptor, len(line))
    return descriptor


def _holder(descriptor: int) -> Holder | None:
    try:
        fields = orjson.loads(os.pread(descriptor, HOLDER_BYTES, 0))
        return Holder(int(fields["pid"]), str(fields["host"]), str(fields["command"]))
    except (OSError, orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        return None


def hold_root(path: str, sources: Sources) -> Path:
    """spool.path for this bridge's life (make_root, then lock_root; the descriptor is never closed), or a
    ConfigError naming the setting and, when another bridge holds it, which one."""
    root = make_root(path, sources)
    try:
        lock_root(root, SERVE)
    except RootInUse as exc:
        fix = "give each bridge its own spool.path" if exc.by_bridge else "let it finish first"
        raise sources.error("spool.path", f"in use by {exc.holder_text}; {fix}", path) from None
    except OSError as exc:
        raise sources.error(
            "spool.path",
            f"cannot lock {LOCK_FILE} there: {exc.strerror or exc}; point spool.path to a file system with "
            "flock (on NFS, with its lock service)",
            path,
        ) from None
    return root
