"""The failure streak counts what IDaaS would count, and nothing anyone else can send."""

from __future__ import annotations

from prometheus_client import REGISTRY

from bridge.guard import AutoDisableGuard


def streak(webhook: str = "prod") -> float | None:
    """The exported gauge, as /metrics shows it."""
    return REGISTRY.get_sample_value("idaas_bridge_failure_streak", {"webhook": webhook})


def test_failures_of_well_formed_deliveries_raise_the_streak_and_a_fast_2xx_resets_it() -> None:
    guard = AutoDisableGuard(["prod"])
    guard.record("prod", 401, 0.01, well_formed=True)  # wrong token or public URL
    guard.record("prod", 503, 0.2, well_formed=True)  # spool full
    guard.record("prod", 408, 2.0, well_formed=True)
    guard.hang_up("prod", well_formed=True)
    assert guard.streaks["prod"] == 4 and streak() == 4
    guard.record("prod", 200, 3.5, well_formed=True)  # too slow: IDaaS gave up already
    assert guard.streaks["prod"] == 5
    guard.record("prod", 202, 0.1, well_formed=True)
    assert guard.streaks["prod"] == 0 and streak() == 0


def test_junk_without_a_plausible_signature_never_moves_the_streak() -> None:
    guard = AutoDisableGuard(["prod", "other"])
    guard.record("prod", 401, 0.01, well_formed=True)
    for status in (401, 408, 413, 503):
        for _ in range(50):
            guard.record("prod", status, 0.01, well_formed=False)
    guard.hang_up("prod", well_formed=False)
    assert guard.streaks == {"prod": 1, "other": 0} and streak() == 1


def test_shared_state_counts_the_failures_of_every_process_in_order() -> None:
    import multiprocessing

    from bridge.guard import GuardState

    state = GuardState(["prod"], 0.0, shared=True)
    guard = AutoDisableGuard(["prod"], state=state)
    guard.record("prod", 503, 0.1, well_formed=True)

    def other_worker() -> None:
        worker = AutoDisableGuard(["prod"], state=state)
        for _ in range(3):
            worker.record("prod", 401, 0.01, well_formed=True)

    child = multiprocessing.get_context("fork").Process(target=other_worker)
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert guard.streaks["prod"] == 4  # 1 here + 3 in the other process
    guard.record("prod", 200, 0.1, well_formed=True)
    assert guard.streaks["prod"] == 0 and streak() == 0


def test_the_last_durable_delivery_is_any_workers_and_none_before_the_first() -> None:
    """What the automatic backfill's gap starts from (bridge/adminapi/recovery.py)."""
    import multiprocessing

    from bridge.guard import GuardState

    state = GuardState(["prod"], 1000.0, shared=True)
    watching = AutoDisableGuard(["prod"], clock=lambda: 1000.0, state=state)  # worker 0 runs the watcher
    assert watching.delivered_at("prod") is None  # the start time is no delivery
    watching.record("prod", 503, 0.1, well_formed=True)
    assert watching.delivered_at("prod") is None

    def other_worker() -> None:
        AutoDisableGuard(["prod"], clock=lambda: 1234.5, state=state).record(
            "prod", 200, 0.1, well_formed=True
        )

    child = multiprocessing.get_context("fork").Process(target=other_worker)
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert watching.delivered_at("prod") == 1234.5
