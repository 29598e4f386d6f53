"""Make librdkafka announce its main queue's events on a file descriptor the event loop watches.

confluent-kafka serves delivery reports (and statistics, errors, its log lines) only through `poll()`, and
offers no way to learn that some are waiting without serving them. librdkafka itself has one:
`rd_kafka_queue_io_event_enable` makes it write a byte to a descriptor when an event is queued after the
queue was last served (one byte per quiet period, not per event). confluent-kafka does not expose it for a
producer, so it is called here through ctypes, on the `rd_kafka_t` the Python producer wraps.

That handle is the first field after the object header of confluent-kafka's C `Handle` struct, as it has
been since the client's first release; `watch` checks it by asking librdkafka for the client's name
before touching the queue, and tests/unit/test_main_queue.py pins it for each upgrade of the client.
"""

from __future__ import annotations

import ctypes
import sys
from functools import cache
from typing import Final

from confluent_kafka import Producer, cimpl

#: Where confluent-kafka's `Handle` keeps its `rd_kafka_t *`: right after PyObject_HEAD.
_HANDLE_RK_OFFSET: Final = sys.getsizeof(object())
#: What librdkafka writes on the descriptor: any byte would do, only its arrival counts.
_WAKE_BYTE: Final = b"!"


class MainQueueUnavailable(RuntimeError):
    """The producer object does not hold the librdkafka handle where this module looks for it (a
    confluent-kafka whose C struct changed)."""


@cache
def _librdkafka() -> ctypes.CDLL:
    """librdkafka's functions, looked up through confluent-kafka's extension module: its dependencies are
    searched too, so this finds the library it loaded, bundled in the wheel or the system's."""
    library = ctypes.CDLL(cimpl.__file__)
    library.rd_kafka_name.argtypes = [ctypes.c_void_p]
    library.rd_kafka_name.restype = ctypes.c_char_p
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


def _handle(producer: Producer, client_id: str) -> int:
    """The producer's `rd_kafka_t *`, checked against the name librdkafka gives the client
    ("<client.id>#producer-<n>")."""
    pointer = ctypes.c_void_p.from_address(id(producer) + _HANDLE_RK_OFFSET).value
    name = _librdkafka().rd_kafka_name(pointer) if pointer else None
    if not name or not name.decode(errors="replace").startswith(f"{client_id}#producer-"):
        raise MainQueueUnavailable(
            f"confluent-kafka {cimpl.version()[0]} keeps its librdkafka handle elsewhere: "
            "bridge/publish/main_queue.py needs updating for this version"
        )
    assert pointer is not None
    return pointer


def _set(producer: Producer, client_id: str, fd: int, payload: bytes | None) -> None:
    library = _librdkafka()
    queue = library.rd_kafka_queue_get_main(_handle(producer, client_id))
    try:
        library.rd_kafka_queue_io_event_enable(queue, fd, payload, len(payload or b""))
    finally:
        # Only this reference to the queue goes; the setting stays with the queue the client owns.
        library.rd_kafka_queue_destroy(queue)


def watch(producer: Producer, client_id: str, fd: int) -> None:
    """From now on librdkafka writes a byte to `fd` when an event reaches the producer's main queue after
    `poll()` last served it. `fd` must stay open until `unwatch`."""
    _set(producer, client_id, fd, _WAKE_BYTE)


def unwatch(producer: Producer, client_id: str) -> None:
    """librdkafka stops writing to the descriptor `watch` gave it (which may then be closed)."""
    _set(producer, client_id, -1, None)
