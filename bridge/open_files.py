"""The process's limit on open files, which the listeners' connection caps must fit under.

Why: a connection is a file. Container runtimes now start processes with a soft RLIMIT_NOFILE of 1024 and a
hard one of 524288 (containerd since it dropped LimitNOFILE from its unit, containerd/containerd#8924;
Docker the same, moby/moby#45534), and leave raising the soft limit to the program (Go's runtime does it
since 1.19; CPython does not). At the soft limit uvloop's accept fails quietly and new connections wait in
the kernel's queue: a flood of 1,000 silent connections would hold every delivery back until their
deadlines, long before the 4,096 of server.max_connections closes any of them.
"""

from __future__ import annotations

import logging
import resource
from typing import Final

log = logging.getLogger(__name__)

#: Files a process holds besides its connections: spool segments, Kafka and Admin API sockets, the event
#: loop's own descriptors, logs, the workers' pipes.
RESERVED_FILES: Final = 256


def raise_limit() -> int:
    """Raise the soft limit to the hard one (call once at start-up, before the workers are forked: they
    inherit it), and return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError) as error:  # a hard limit above the kernel's fs.nr_open
            log.warning(
                f"the open-file limit stays at {soft}: raising it to the hard limit {hard} failed ({error})"
            )
    return soft


def connections_allowed(wanted: int, other_connections: int, setting: str) -> int:
    """`wanted` connections for a listener, or fewer when the process may not open that many files besides
    `other_connections` (its other listener's) and RESERVED_FILES; a warning then names `setting`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    room = soft - RESERVED_FILES - other_connections
    if room >= wanted:
        return wanted
    allowed = max(room, 1)
    log.warning(
        f"{setting} = {wanted}, but this process may open only {soft} files (RLIMIT_NOFILE, hard limit "
        f"included): its connections are capped at {allowed}; raise the container's nofile limit or lower "
        f"{setting}",
        extra={"wanted": wanted, "allowed": allowed, "open_file_limit": soft},
    )
    return allowed
