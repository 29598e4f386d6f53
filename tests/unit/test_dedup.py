"""Duplicate suppression: the TTL and size bound, and copies of one delivery that arrive at the same time."""

from __future__ import annotations

import asyncio

from bridge import metrics
from bridge.dedup import BUCKET_SECONDS, DeliveryDedup


def remember(dedup: DeliveryDedup[str], delivery_id: str) -> None:
    assert dedup.claim(delivery_id).owned
    dedup.settle(delivery_id, "stored", durable=True)


def test_dedup_remembers_for_the_ttl_and_within_the_size_bound() -> None:
    async def scenario() -> None:
        now = [0.0]
        dedup = DeliveryDedup[str](ttl_seconds=10, max_entries=2, clock=lambda: now[0])
        remember(dedup, "a")
        assert dedup.claim("a").duplicate
        assert dedup.claim("b").owned
        now[0] = 11
        assert dedup.claim("a").owned
        for key in ("x", "y", "z"):
            remember(dedup, key)
        assert dedup.claim("x").owned and dedup.claim("y").duplicate and dedup.claim("z").duplicate

    asyncio.run(scenario())


def test_the_entries_gauge_follows_what_is_remembered() -> None:
    async def scenario() -> None:
        now = [0.0]
        dedup = DeliveryDedup[str](ttl_seconds=10, max_entries=2, clock=lambda: now[0])
        entries = metrics.DEDUP_ENTRIES._value
        for key in ("a", "b", "c"):
            remember(dedup, key)
        assert entries.get() == 2  # the size bound dropped "a"
        now[0] = 5
        remember(dedup, "d")
        assert entries.get() == 2
        now[0] = 10.5  # "b" and "c" expired; "d" (remembered at 5) not yet
        assert dedup.claim("e").owned
        assert entries.get() == 1
        dedup.settle("e", "unavailable", durable=False)
        assert entries.get() == 1

    asyncio.run(scenario())


async def deliver(dedup: DeliveryDedup[str], delivery_id: str, store: list[str], outcome: str) -> str:
    """What the receiver does with one copy: the owner stores (after an await, as Kafka takes time)."""
    claim = dedup.claim(delivery_id)
    if claim.duplicate:
        return "duplicate"
    if claim.pending is not None:
        return await asyncio.shield(claim.pending)
    await asyncio.sleep(0.01)
    if outcome == "stored":
        store.append(delivery_id)
    dedup.settle(delivery_id, outcome, durable=outcome == "stored")
    return outcome


def test_concurrent_copies_store_one_record_and_all_get_the_first_copys_answer() -> None:
    async def scenario() -> tuple[list[str], list[str], str]:
        dedup = DeliveryDedup[str](ttl_seconds=60, max_entries=10)
        store: list[str] = []
        answers = await asyncio.gather(*(deliver(dedup, "d-1", store, "stored") for _ in range(5)))
        later = await deliver(dedup, "d-1", store, "stored")
        return store, list(answers), later

    store, answers, later = asyncio.run(scenario())
    assert store == ["d-1"]
    assert answers == ["stored"] * 5
    assert later == "duplicate"


def test_when_the_first_copy_fails_the_waiters_fail_too_and_a_retry_is_processed_afresh() -> None:
    async def scenario() -> tuple[list[str], list[str], str]:
        dedup = DeliveryDedup[str](ttl_seconds=60, max_entries=10)
        store: list[str] = []
        answers = await asyncio.gather(*(deliver(dedup, "d-2", store, "503") for _ in range(3)))
        retry = await deliver(dedup, "d-2", store, "stored")
        return store, list(answers), retry

    store, answers, retry = asyncio.run(scenario())
    assert answers == ["503"] * 3  # no 2xx for an event that is not durable
    assert retry == "stored" and store == ["d-2"]


def test_a_waiter_that_is_cancelled_does_not_cancel_the_first_copy() -> None:
    async def scenario() -> str:
        dedup = DeliveryDedup[str](ttl_seconds=60, max_entries=10)
        store: list[str] = []
        first = asyncio.create_task(deliver(dedup, "d-3", store, "stored"))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(deliver(dedup, "d-3", store, "stored"))
        await asyncio.sleep(0)
        waiter.cancel()
        return await first

    assert asyncio.run(scenario()) == "stored"


UUID_ID = "019c1a2b-3c4d-7e6f-8a9b-0c1d2e3f4a5b"


def test_a_uuid_written_another_way_is_another_id() -> None:
    """IDaaS sends canonical UUID text; nothing says it treats other spellings as the same delivery, so a
    compact key must not conflate them (a conflated id would answer "duplicate" and drop an event)."""

    async def scenario() -> None:
        dedup = DeliveryDedup[str](ttl_seconds=60, max_entries=100)
        remember(dedup, UUID_ID)
        assert dedup.claim(UUID_ID).duplicate
        spellings = [
            UUID_ID.upper(),
            UUID_ID.replace("-", ""),
            "{" + UUID_ID + "}",
            "urn:uuid:" + UUID_ID,
            str(int(UUID_ID.replace("-", ""), 16)),  # its number in decimal: still text
            UUID_ID + " ",
        ]
        for other in spellings:
            assert dedup.claim(other).owned, other
            dedup.settle(other, "unavailable", durable=False)

    asyncio.run(scenario())


def test_uuid_and_other_ids_are_remembered_each_as_themselves() -> None:
    async def scenario() -> None:
        dedup = DeliveryDedup[str](ttl_seconds=60, max_entries=100)
        others = ["delivery-1", UUID_ID.upper(), UUID_ID.replace("-", "_"), "0" * 36, "é" * 3]
        for delivery_id in [UUID_ID, *others]:
            remember(dedup, delivery_id)
        for delivery_id in [UUID_ID, *others]:
            assert dedup.claim(delivery_id).duplicate, delivery_id
        near = UUID_ID[:-1] + "c"  # one bit away
        assert dedup.claim(near).owned

    asyncio.run(scenario())


def test_copies_of_a_uuid_id_in_progress_wait_for_the_first() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        dedup = DeliveryDedup[str](ttl_seconds=60, max_entries=10)
        store: list[str] = []
        answers = await asyncio.gather(*(deliver(dedup, UUID_ID, store, "stored") for _ in range(4)))
        return store, list(answers)

    store, answers = asyncio.run(scenario())
    assert store == [UUID_ID] and answers == ["stored"] * 4


def test_an_id_is_remembered_for_the_whole_ttl_and_at_most_a_bucket_longer() -> None:
    async def scenario() -> None:
        now = [100.0]
        dedup = DeliveryDedup[str](ttl_seconds=10, max_entries=100, clock=lambda: now[0])
        remember(dedup, "early")
        now[0] = 100 + BUCKET_SECONDS / 2
        remember(dedup, "late")  # same bucket as "early"
        now[0] = 110 + BUCKET_SECONDS / 4  # past the TTL of "early", not of "late"
        assert dedup.claim("late").duplicate
        assert dedup.claim("early").duplicate  # kept with its bucket: a little longer, never shorter
        now[0] = 110 + BUCKET_SECONDS / 2
        assert dedup.claim("late").owned and dedup.claim("early").owned

    asyncio.run(scenario())


def test_the_oldest_ids_go_first_across_buckets_and_the_bound_holds() -> None:
    async def scenario() -> None:
        now = [0.0]
        dedup = DeliveryDedup[str](ttl_seconds=1000, max_entries=5, clock=lambda: now[0])
        entries = metrics.DEDUP_ENTRIES._value
        ids = [f"{index:08x}-0000-7000-8000-000000000000" for index in range(12)]
        for index, delivery_id in enumerate(ids):
            now[0] = index * BUCKET_SECONDS * 0.4  # a few ids per bucket
            remember(dedup, delivery_id)
            assert entries.get() == min(index + 1, 5)
        for delivery_id in ids[-5:]:
            assert dedup.claim(delivery_id).duplicate
        for delivery_id in ids[:-5]:
            assert dedup.claim(delivery_id).owned
            dedup.settle(delivery_id, "unavailable", durable=False)
        now[0] = 2000  # every bucket expired
        assert dedup.claim("after").owned
        assert entries.get() == 0

    asyncio.run(scenario())


def test_a_uuid_spelled_across_two_remembered_ones_is_not_remembered() -> None:
    """UUIDs are kept side by side as bytes: the end of one and the start of the next spell a third UUID,
    which was never delivered."""

    async def scenario() -> None:
        dedup = DeliveryDedup[str](ttl_seconds=60, max_entries=10)  # one bin: every UUID side by side
        first, second = "00112233-4455-6677-8899-aabbccddeeff", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        remember(dedup, first)
        remember(dedup, second)
        straddling = "8899aabb-ccdd-eeff-0f1e-2d3c4b5a6978"  # the last 8 bytes of one, the first 8 of next
        assert dedup.claim(straddling).owned
        assert dedup.claim(first).duplicate and dedup.claim(second).duplicate

    asyncio.run(scenario())


def test_text_and_uuid_ids_are_forgotten_oldest_first_together() -> None:
    async def scenario() -> None:
        dedup = DeliveryDedup[str](ttl_seconds=1000, max_entries=4)
        nil = "00000000-0000-0000-0000-000000000000"  # a UUID kept as text
        ids = [UUID_ID, "text-1", nil, f"{1:08x}-0000-7000-8000-000000000000", "text-2", "text-3"]
        ids += [f"{index:08x}-0000-7000-8000-000000000000" for index in range(2, 7)]
        for count, delivery_id in enumerate(ids, start=1):
            remember(dedup, delivery_id)
            kept = ids[max(0, count - 4) : count]
            for remembered in kept:
                assert dedup.claim(remembered).duplicate, (delivery_id, remembered)
            for forgotten in ids[: max(0, count - 4)]:
                assert dedup.claim(forgotten).owned, (delivery_id, forgotten)
                dedup.settle(forgotten, "unavailable", durable=False)

    asyncio.run(scenario())
