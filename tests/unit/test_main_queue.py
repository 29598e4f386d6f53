"""bridge/publish/main_queue.py on a real librdkafka producer (no broker needed): it finds the client's
handle where confluent-kafka keeps it, and librdkafka announces its main queue's events on the descriptor.
A confluent-kafka upgrade that moves the handle fails here; a handle looked for in the wrong place is a
start-up error, never a crash."""

from __future__ import annotations

import ctypes
import os
import select
import sys
from importlib import metadata
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka import Producer

from bridge.config import ConfigError
from bridge.publish import main_queue
from tests.start_up import refusal

#: `idaas-bridge <argv[1:]>` with a confluent-kafka whose struct moved the handle by one field.
MOVED_HANDLE = """
import sys
from bridge.publish import main_queue
main_queue._HANDLE_RK_OFFSET += 8
from bridge.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _producer(client_id: str) -> Producer:
    # No broker at this address: a message's delivery report (its timeout) comes within a second or two.
    return Producer({"bootstrap.servers": "127.0.0.1:1", "client.id": client_id, "message.timeout.ms": 200})


def _readable(fd: int, seconds: float) -> bool:
    return bool(select.select([fd], [], [], seconds)[0])


def test_librdkafka_writes_to_the_descriptor_when_events_wait_and_stops_after_unwatch() -> None:
    producer = _producer("main-queue-test")
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        rk = main_queue.handle(producer, "main-queue-test")
        main_queue.watch(rk, write_end)
        producer.poll(0)  # librdkafka announces an event that finds the queue empty: empty it
        reports: list[object] = []
        producer.produce("t", b"v", on_delivery=lambda error, message: reports.append(error))
        while not reports:  # connection errors may be announced first
            assert _readable(read_end, 30), "no event announced"
            os.read(read_end, 512)
            assert producer.poll(0) > 0  # what was announced is there to serve
        main_queue.unwatch(rk)
        producer.produce("t", b"v", on_delivery=lambda error, message: reports.append(error))
        producer.flush(30)
        assert len(reports) == 2 and not _readable(read_end, 0)  # reported, unannounced
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_handle_that_is_not_the_producers_client_is_refused() -> None:
    producer = _producer("main-queue-test-2")
    with pytest.raises(main_queue.MainQueueUnavailable, match="update that module"):
        main_queue.handle(producer, "some-other-client")


def _no_package_metadata(distribution_name: str) -> str:
    raise metadata.PackageNotFoundError(distribution_name)


@pytest.mark.parametrize("answer", ["2.16.1", ("2.5.0", 0x020500FF)], ids=["text", "older-pair"])
def test_the_refusal_names_the_client_versions_without_its_package_metadata(
    monkeypatch: pytest.MonkeyPatch, answer: object
) -> None:
    """A vendored confluent-kafka, or a distribution's build, may have no package metadata: the refusal
    still names the versions (asked of the client, whichever shape its `version()` answers in) and what to
    do, instead of a PackageNotFoundError's traceback."""
    monkeypatch.setattr(metadata, "version", _no_package_metadata)
    monkeypatch.setattr(confluent_kafka, "version", lambda: answer)
    producer = _producer("main-queue-test-4")
    with pytest.raises(main_queue.MainQueueUnavailable) as refused:
        main_queue.handle(producer, "some-other-client")
    assert str(refused.value).startswith(
        f"confluent-kafka {answer[0] if isinstance(answer, tuple) else answer}, "
        f"librdkafka {confluent_kafka.libversion()[0]}: "
    )
    assert "install a confluent-kafka release that pyproject.toml allows" in str(refused.value)


def test_a_client_id_longer_than_librdkafkas_name_still_finds_the_handle() -> None:
    """kafka.client_properties may set any client.id; librdkafka cuts the name it builds from it at 127
    bytes, so a long one (the bridge appends "-receiver") must not read as a moved handle."""
    for client_id in ("c" * 117, "c" * 118, "c" * 300):
        producer = _producer(client_id)
        assert main_queue.handle(producer, client_id)


def test_a_handle_moved_anywhere_else_in_the_struct_is_refused_without_crashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As if confluent-kafka's struct had changed: every other field (NULL, a Python object, a number that
    is no address) and the memory past the object are looked at as the handle. Reading the name through
    such a pointer would kill the process; the check refuses it."""
    producer = _producer("main-queue-test-3")
    word = ctypes.sizeof(ctypes.c_void_p)
    real = main_queue._HANDLE_RK_OFFSET
    for offset in range(0, type(producer).__basicsize__ + 4 * word, word):
        if offset == real:
            continue
        monkeypatch.setattr(main_queue, "_HANDLE_RK_OFFSET", offset)
        with pytest.raises(main_queue.MainQueueUnavailable) as refused:
            main_queue.handle(producer, "main-queue-test-3")
        assert isinstance(refused.value, ConfigError)  # reported at start-up as one line, exit code 3


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_with_a_moved_handle_stops_at_start_up_with_one_line(tmp_path: Path, workers: int) -> None:
    """The check runs where each publisher is made (serve's Bridge, or each worker's), before anything is
    served: one line naming the fix, exit code 3, no traceback, and no worker restarted."""
    line = refusal(tmp_path, ["serve"], workers, program=[sys.executable, "-c", MOVED_HANDLE])
    assert line.startswith("idaas-bridge: configuration error: confluent-kafka 2."), line
    assert "does not keep its librdkafka handle where the bridge looks for it" in line
