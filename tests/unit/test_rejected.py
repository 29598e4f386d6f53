"""The rejected file: records Kafka refused for good survive on disk until a replay publishes them."""

from __future__ import annotations

from pathlib import Path

from bridge import metrics
from bridge.publish.kafka import PublishError
from bridge.publish.rejected import RejectedRecord, RejectedRecords
from bridge.routing import OutboundRecord


def record(index: int) -> OutboundRecord:
    return OutboundRecord(
        topic="idaas.user",
        key=f"key-{index}".encode(),
        value=b'{"id":"' + str(index).encode() + b'","bytes":"\x00\xff"}',
        headers=[("idaas-delivery-id", str(index).encode()), ("binary", b"\x00\xfe")],
        timestamp_ms=1_795_000_000_000 + index,
    )


def refused(detail: str = "Broker: Message size too large") -> PublishError:
    return PublishError("msg_size_too_large", detail, record_rejected=True)


def gauge() -> float:
    return metrics.REJECTED_RECORDS._value.get()


def test_kept_records_come_back_byte_for_byte_with_the_reason(tmp_path: Path) -> None:
    store = RejectedRecords(tmp_path / "spool")
    for index in range(3):
        store.keep(record(index), refused(f"refused {index}"))
    assert gauge() == 3
    again = RejectedRecords(tmp_path / "spool").read()  # as a new process would read it
    assert [entry.record for entry in again] == [record(index) for index in range(3)]
    assert [entry.detail for entry in again] == ["refused 0", "refused 1", "refused 2"]
    assert {entry.reason for entry in again} == {"msg_size_too_large"}


def test_a_replay_keeps_exactly_the_records_still_refused(tmp_path: Path) -> None:
    store = RejectedRecords(tmp_path)
    for index in range(4):
        store.keep(record(index), refused())
    offered: list[int] = []

    def publish(entries: list[RejectedRecord]) -> list[RejectedRecord]:
        offered.extend(int(entry.record.key.decode()[4:]) for entry in entries)
        return [entry for entry in entries if entry.record.key in (b"key-1", b"key-3")]

    assert store.replay(publish) == (2, 2)
    assert offered == [0, 1, 2, 3]
    assert [entry.record for entry in store.read()] == [record(1), record(3)]
    assert gauge() == 2
    assert store.replay(lambda entries: []) == (2, 0)
    assert not store.path.exists() and store.read() == [] and gauge() == 0
    assert store.replay(publish) == (0, 0)
