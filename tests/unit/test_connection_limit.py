"""The listener's connection cap: past it the connection idle longest is evicted, never a busy one."""

from __future__ import annotations

from bridge.connection_limit import ConnectionLimit


class Connection:
    def __init__(self, name: str) -> None:
        self.name = name
        self.evicted = False

    def evict(self) -> None:
        assert not self.evicted, f"{self.name} evicted twice"
        self.evicted = True


def limited(limit: int) -> tuple[ConnectionLimit, list[int]]:
    evictions = [0]

    def count() -> None:
        evictions[0] += 1

    return ConnectionLimit(limit, count), evictions


def test_past_the_limit_the_connection_idle_longest_is_evicted() -> None:
    cap, evictions = limited(2)
    first, second, third = Connection("first"), Connection("second"), Connection("third")
    cap.opened(first)
    cap.opened(second)
    assert cap.open == 2 and not first.evicted and evictions == [0]
    cap.opened(third)
    assert first.evicted and not second.evicted and not third.evicted
    assert cap.open == 2 and evictions == [1]


def test_a_connection_with_a_request_in_progress_is_never_evicted() -> None:
    cap, _ = limited(2)
    busy, idle, new = Connection("busy"), Connection("idle"), Connection("new")
    cap.opened(busy)
    cap.busy(busy)
    cap.opened(idle)
    cap.opened(new)
    assert idle.evicted and not busy.evicted and not new.evicted


def test_a_new_connection_is_evicted_when_every_other_one_is_busy() -> None:
    cap, evictions = limited(2)
    connections = [Connection(str(number)) for number in range(2)]
    for connection in connections:
        cap.opened(connection)
        cap.busy(connection)
    new = Connection("new")
    cap.opened(new)
    assert new.evicted and not any(connection.evicted for connection in connections)
    assert cap.open == 2 and evictions == [1]


def test_an_answered_connection_becomes_the_most_recently_active_one() -> None:
    cap, _ = limited(2)
    older, newer, third = Connection("older"), Connection("newer"), Connection("third")
    cap.opened(older)
    cap.opened(newer)
    cap.busy(older)  # a request on the older connection, answered: it is now the last one to be evicted
    cap.idle(older)
    cap.opened(third)
    assert newer.evicted and not older.evicted and not third.evicted


def test_connections_that_end_free_their_place_and_are_never_evicted() -> None:
    cap, evictions = limited(2)
    gone, busy_gone, kept = Connection("gone"), Connection("busy_gone"), Connection("kept")
    cap.opened(gone)
    cap.opened(busy_gone)
    cap.busy(busy_gone)
    cap.closed(gone)
    cap.closed(busy_gone)
    assert cap.open == 0
    cap.opened(kept)
    cap.opened(Connection("another"))
    assert cap.open == 2 and evictions == [0] and not gone.evicted and not kept.evicted


def test_the_high_water_mark_is_the_most_open_at_once_since_it_was_last_taken() -> None:
    """What heap.trim_after_floods reads to tell a flood of connections from ordinary traffic."""
    cap, _ = limited(3)
    connections = [Connection(str(number)) for number in range(5)]
    for connection in connections:
        cap.opened(connection)  # the fourth and fifth evict: never more than 3 open
    assert cap.take_high_water() == 3
    cap.closed(connections[4])
    cap.closed(connections[3])
    assert cap.take_high_water() == 3  # 3 were open when it was taken
    assert cap.take_high_water() == 1
