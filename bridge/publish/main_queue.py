"""Make librdkafka announce its main queue's events on a file descriptor the event loop watches.

confluent-kafka serves delivery reports (and statistics, errors, its log lines) only through `poll()`, and
offers no way to learn that some are waiting without serving them. librdkafka itself has one:
`rd_kafka_queue_io_event_enable` makes it write a byte to a descriptor when an event is queued after the
queue was last served (one byte per quiet period, not per event). confluent-kafka does not expose it for a
producer, so it is called here through ctypes, on the `rd_kafka_t` the Python producer wraps.

That handle is the first field after the object header of confluent-kafka's C `Handle` struct, as it has
been since the client's first release. pyproject.toml caps confluent-kafka below the minor release after
the newest one this was verified on; `handle` checks it all the same, at start-up, without trusting what
it finds there (a changed struct is a start-up error, never a crash), and tests/unit/test_main_queue.py
pins it for each upgrade of the client.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from functools import cache
from typing import Final

import confluent_kafka
from confluent_kafka import Producer, cimpl

from bridge.config import ConfigError

#: Where confluent-kafka's `Handle` keeps its `rd_kafka_t *`: right after PyObject_HEAD.
_HANDLE_RK_OFFSET: Final = sys.getsizeof(object())
#: The bytes of its name librdkafka keeps (`rk_name`, a char[128] it fills with snprintf): a longer
#: client.id (kafka.client_properties) is cut there, so the check compares only what fits.
_NAME_MAX_BYTES: Final = 127
#: What librdkafka writes on the descriptor: any byte would do, only its arrival counts.
_WAKE_BYTE: Final = b"!"


class MainQueueUnavailable(ConfigError):
    """The producer object does not hold the librdkafka handle where this module looks for it (a
    confluent-kafka whose C struct changed). A ConfigError, so that it is reported as one: a line at
    start-up saying what to do, exit code 3, and a worker that meets it stops the bridge rather than being
    restarted, since no restart changes the installed client."""


@cache
def _librdkafka() -> ctypes.CDLL:
    """librdkafka's functions, looked up through confluent-kafka's extension module: its dependencies are
    searched too, so this finds the library it loaded, bundled in the wheel or the system's."""
    library = ctypes.CDLL(cimpl.__file__)
    # The address of the name inside the handle (`rk->rk_name`, an array in the struct): computed, not
    # read, so any pointer can be passed; `_memory` then reads it.
    library.rd_kafka_name.argtypes = [ctypes.c_void_p]
    library.rd_kafka_name.restype = ctypes.c_void_p
    library.rd_kafka_queue_get_main.argtypes = [ctypes.c_void_p]
    library.rd_kafka_queue_get_main.restype = ctypes.c_void_p
    library.rd_kafka_queue_io_event_enable.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_size_t,
    ]
    library.rd_kafka_queue_io_event_enable.restype = None
    library.rd_kafka_queue_destroy.argtypes = [ctypes.c_void_p]
    library.rd_kafka_queue_destroy.restype = None
    return library


@cache
def _write() -> Callable[[int, int, int], int]:
    """The C library's write(2), which takes an address where os.write takes bytes."""
    write = ctypes.CDLL(None).write
    write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
    write.restype = ctypes.c_ssize_t
    return write


def _memory(address: int, size: int) -> bytes | None:
    """`size` bytes of this process's memory at `address`, or None where they are not all readable. The
    kernel copies them into a pipe and answers EFAULT for an address the process cannot read, where reading
    them from Python (ctypes) would kill the process with a segmentation fault."""
    read_end, write_end = os.pipe()
    try:
        if _write()(write_end, address, size) != size:
            return None
        return os.read(read_end, size)
    finally:
        os.close(read_end)
        os.close(write_end)


def client_versions() -> str:
    """ "confluent-kafka <version>, librdkafka <version>", asked of the client itself rather than of the
    package metadata, which a vendored copy or a distribution's build may lack (the error that names them
    must not become a traceback). The releases pyproject.toml allows answer `version()` with the text alone
    or, the older ones, with a (text, number) pair, as `libversion()` does."""
    client: object = confluent_kafka.version()
    client = client[0] if isinstance(client, tuple) else client
    return f"confluent-kafka {client}, librdkafka {confluent_kafka.libversion()[0]}"


def handle(producer: Producer, client_id: str) -> int:
    """The producer's `rd_kafka_t *`, checked against the name librdkafka gives the client
    ("<client.id>#producer-<n>") before anything uses it; raises MainQueueUnavailable. Whatever the field
    holds if the struct changed (another pointer, a number, NULL) fails the check: the name is read through
    the kernel (`_memory`), never by dereferencing an unchecked pointer."""
    expected = f"{client_id}#producer-".encode()[:_NAME_MAX_BYTES]
    pointer = None
    if type(producer).__basicsize__ >= _HANDLE_RK_OFFSET + ctypes.sizeof(ctypes.c_void_p):
        pointer = ctypes.c_void_p.from_address(id(producer) + _HANDLE_RK_OFFSET).value
    name = _memory(_librdkafka().rd_kafka_name(pointer), len(expected)) if pointer else None
    if pointer is None or name != expected:
        raise MainQueueUnavailable(
            f"{client_versions()}: this client does not keep its librdkafka handle "
            "where the bridge looks for it (bridge/publish/main_queue.py): install a confluent-kafka "
            "release that pyproject.toml allows, or update that module for this one"
        )
    return pointer


def _set(rk: int, fd: int, payload: bytes | None) -> None:
    library = _librdkafka()
    queue = library.rd_kafka_queue_get_main(rk)
    try:
        library.rd_kafka_queue_io_event_enable(queue, fd, payload, len(payload or b""))
    finally:
        # Only this reference to the queue goes; the setting stays with the queue the client owns.
        library.rd_kafka_queue_destroy(queue)


def watch(rk: int, fd: int) -> None:
    """From now on librdkafka writes a byte to `fd` when an event reaches the main queue of `rk` (from
    `handle`) after `poll()` last served it. `fd` must stay open until `unwatch`."""
    _set(rk, fd, _WAKE_BYTE)


def unwatch(rk: int) -> None:
    """librdkafka stops writing to the descriptor `watch` gave it (which may then be closed)."""
    _set(rk, -1, None)
