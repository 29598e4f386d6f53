"""The automatic backfill after a recovery (bridge/adminapi/recovery.py): the gap, what triggers it (also
across a restart), and that two backfills of one webhook never run at once. The backfill itself is
replaced by a recording runner here; tests/e2e/test_never_blind_e2e.py runs the real one against Kafka."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bridge.adminapi import recovery
from bridge.adminapi.backfill import BackfillReport
from bridge.adminapi.client import AdminApiClient, AdminApiError
from bridge.adminapi.recovery import AutoBackfill, Window, gap_window, lock_name, try_lock
from bridge.cli.backfill import backfill
from bridge.cli.exits import CommandError
from bridge.config import AdminApiSettings, Settings, load_settings
from bridge.guard import AutoDisableGuard

ENV = {"IDAAS_BRIDGE_WEBHOOK_PROD_TOKENS": "prod-token-0123456789"}
ADMIN = AdminApiSettings(
    backfill_margin_seconds=60, backfill_max_gap_seconds=3600, backfill_audit_lag_seconds=0
)
TYPES = ("user.created", "authentication.failed", "token.created")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "bridge.yaml"
    path.write_text(f"webhooks:\n  - name: prod\nspool:\n  path: {tmp_path / 'spool'}\n")
    (tmp_path / "spool").mkdir(exist_ok=True)  # the spool makes it when the bridge starts
    return replace(load_settings(path, ENV), admin_api=ADMIN)


class Recorder:
    """Stands in for the backfill: records each window, and how many ran at once at most."""

    def __init__(self, seconds: float = 0.0, failures: int = 0) -> None:
        self.windows: list[tuple[str, Window]] = []
        self.seconds = seconds
        self.failures = failures
        self.running = 0
        self.most_at_once = 0

    async def __call__(self, webhook: str, window: Window, report: BackfillReport) -> None:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.seconds)
            if self.failures:
                self.failures -= 1
                raise AdminApiError("unavailable", "audit_events: HTTP 503 after 4 attempts")
            report.add("user.created", "published")
            self.windows.append((webhook, window))
        finally:
            self.running -= 1


def auto(
    tmp_path: Path,
    clock: Clock,
    runner: Recorder,
    guard: AutoDisableGuard | None = None,
    admin: AdminApiSettings = ADMIN,
) -> tuple[AutoBackfill, AutoDisableGuard]:
    config = replace(settings(tmp_path), admin_api=admin)
    guard = guard or AutoDisableGuard(["prod"], clock=clock)
    client = AdminApiClient(config.admin_api)
    return AutoBackfill(config, client, None, guard, clock=clock, runner=runner), guard  # type: ignore[arg-type]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_gap_runs_from_the_last_delivery_to_the_recovery_widened_by_the_margin() -> None:
    assert gap_window(1000.0, 2000.0, ADMIN) == (940.0, 2060.0, False)


def test_an_unknown_last_delivery_or_a_long_gap_is_cut_to_the_maximum_nearest_the_recovery() -> None:
    assert gap_window(None, 10_000.0, ADMIN) == (10_060.0 - 3600, 10_060.0, False)
    assert gap_window(1000.0, 10_000.0, ADMIN) == (10_060.0 - 3600, 10_060.0, True)


def test_down_then_enabled_schedules_one_gap_from_the_last_delivery_before_it_went_down(
    tmp_path: Path,
) -> None:
    clock = Clock(1000.0)
    subject, guard = auto(tmp_path, clock, Recorder())
    clock.now = 1100.0
    guard.record("prod", 200, 0.01, well_formed=True)  # the last delivery before the outage
    clock.now = 2000.0
    subject.observed("prod", enabled=False, types=TYPES)
    clock.now = 2100.0
    guard.record("prod", 200, 0.01, well_formed=True)  # the re-enable's test delivery: not the gap's start
    subject.observed("prod", enabled=False, types=TYPES)  # still down: nothing new
    clock.now = 2500.0
    subject.observed("prod", enabled=True, types=TYPES)
    subject.observed("prod", enabled=True, types=TYPES)  # stays up: no second gap
    assert subject.states["prod"].pending == [
        Window(1040.0, 2560.0, ("authentication.failed", "user.created"))
    ]
    assert sample("idaas_bridge_backfill_gap_seconds", webhook="prod") == 1520.0


def test_the_bridges_own_re_enable_schedules_the_gap_once(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    subject, _ = auto(tmp_path, clock, Recorder())
    subject.observed("prod", enabled=False, types=TYPES)  # no delivery known: the longest gap allowed
    subject.recovered("prod", 1500.0, TYPES)  # ReEnabler.on_reenabled, in the same poll
    clock.now = 1800.0
    subject.observed("prod", enabled=True, types=TYPES)  # the next poll sees it enabled: already handled
    assert [(w.start, w.end) for w in subject.states["prod"].pending] == [(1560.0 - 3600, 1560.0)]


def test_a_recovery_seen_after_a_restart_still_counts_and_keeps_the_gap_start(tmp_path: Path) -> None:
    clock = Clock(1000.0)

    async def before_the_restart() -> None:
        subject, guard = auto(tmp_path, clock, Recorder())
        await subject.load()
        clock.now = 1200.0
        guard.record("prod", 200, 0.01, well_formed=True)
        subject._note_deliveries()
        clock.now = 1300.0
        subject.observed("prod", enabled=False, types=TYPES)
        await subject._save()

    async def after_the_restart() -> AutoBackfill:
        clock.now = 4000.0
        subject, _ = auto(tmp_path, clock, Recorder())
        await subject.load()
        subject.observed("prod", enabled=True, types=TYPES)  # an admin re-enabled it meanwhile
        return subject

    asyncio.run(before_the_restart())
    subject = asyncio.run(after_the_restart())
    assert [(w.start, w.end) for w in subject.states["prod"].pending] == [(1140.0, 4060.0)]


def test_one_webhooks_backfills_never_overlap_and_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two recoveries while the first backfill runs, and a second process (another AutoBackfill on the same
    spool directory) with a window of its own: one backfill of the webhook at a time, across both."""
    monkeypatch.setattr(recovery, "LOCK_RETRY_SECONDS", 0.05)
    clock = Clock(1000.0)
    runner = Recorder(seconds=0.2)
    first, _ = auto(tmp_path, clock, runner)
    second, _ = auto(tmp_path, clock, runner)
    completed = sample("idaas_bridge_backfill_runs_total", webhook="prod", result="completed")

    async def scenario() -> None:
        tasks = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
        first.recovered("prod", 900.0, TYPES)
        second.recovered("prod", 900.0, TYPES)
        await asyncio.sleep(0.05)
        first.recovered("prod", 930.0, TYPES)
        while len(runner.windows) < 3:
            await asyncio.sleep(0.02)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert runner.most_at_once == 1
    assert [window.end for _, window in runner.windows].count(990.0) == 1
    assert first.states["prod"].pending == [] and second.states["prod"].pending == []
    assert sample("idaas_bridge_backfill_runs_total", webhook="prod", result="completed") == completed + 3


def test_a_failed_backfill_is_counted_and_retried_until_it_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "FIRST_RETRY_SECONDS", 0.05)
    clock = Clock(1000.0)
    runner = Recorder(failures=2)
    subject, _ = auto(tmp_path, clock, runner)
    failed = sample("idaas_bridge_backfill_runs_total", webhook="prod", result="failed")
    published = sample(
        "idaas_bridge_backfill_events_total", webhook="prod", event_type="user.created", result="published"
    )

    async def scenario() -> None:
        task = asyncio.create_task(subject.run())
        subject.recovered("prod", 900.0, TYPES)
        while not runner.windows:
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert sample("idaas_bridge_backfill_runs_total", webhook="prod", result="failed") == failed + 2
    assert subject.states["prod"].pending == []
    assert (
        sample(
            "idaas_bridge_backfill_events_total",
            webhook="prod",
            event_type="user.created",
            result="published",
        )
        == published + 1
    )


def test_the_audit_log_is_read_only_once_its_lag_after_the_gaps_end_has_passed(tmp_path: Path) -> None:
    runner = Recorder()
    ran_at: list[float] = []

    async def timed(webhook: str, window: Window, report: BackfillReport) -> None:
        ran_at.append(time.time())
        await runner(webhook, window, report)

    config = settings(tmp_path)
    lagging = replace(config, admin_api=replace(ADMIN, backfill_audit_lag_seconds=0.5))
    subject = AutoBackfill(
        lagging,
        AdminApiClient(ADMIN),
        None,
        AutoDisableGuard(["prod"]),
        runner=timed,  # type: ignore[arg-type]
    )

    async def scenario() -> float:
        task = asyncio.create_task(subject.run())
        recovered = time.time() - 60  # the gap ends at the recovery + the 60 s margin: now
        subject.recovered("prod", recovered, TYPES)
        while not runner.windows:
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return recovered + 60 + 0.5

    ready_at = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert ran_at and ran_at[0] >= ready_at


def test_the_manual_command_refuses_while_the_bridge_backfills_the_same_webhook(tmp_path: Path) -> None:
    tenant = AdminApiSettings(hostname="acme.us.trustedauth.com", application_id="a", shared_secret="s")
    config = replace(settings(tmp_path), admin_api=tenant)
    held = try_lock(Path(config.spool.path) / lock_name("prod"))  # the bridge's worker holds it
    assert held is not None
    try:
        start = datetime(2027, 3, 1, 8, tzinfo=UTC)
        with pytest.raises(CommandError) as refused:
            backfill(config, start, start + timedelta(hours=1), dry_run=False, page_size=100)
        assert "an automatic backfill of webhook prod is running" in str(refused.value)
    finally:
        os.close(held)
    free = try_lock(Path(config.spool.path) / lock_name("prod"))  # once the bridge is done
    assert free is not None
    os.close(free)


# --- the bridge's own downtime (admin_api.backfill_downtime) ------------------------------------------


def run_until(tmp_path: Path, clock: Clock, stop_at: float, clean: bool) -> None:
    """One run of the bridge from `clock.now`: loaded, heartbeats until `stop_at`, then stopped cleanly
    (SIGTERM: stopping(), then the run's final write) or crashed (the last periodic write is all that
    remains)."""
    subject, _ = auto(tmp_path, clock, Recorder())

    async def serve() -> None:
        await subject.load()
        await subject._save()
        while clock.now + recovery.FLUSH_SECONDS <= stop_at:  # the periodic writes
            clock.now += recovery.FLUSH_SECONDS
            subject._heartbeat()
            await subject._save()
        clock.now = stop_at
        if clean:
            subject.stopping()
            clock.now += 5  # the shutdown's later phases: not serving any more
            subject._heartbeat()
            await subject._save()

    asyncio.run(serve())


def restart(tmp_path: Path, clock: Clock, at: float, admin: AdminApiSettings = ADMIN) -> AutoBackfill:
    clock.now = at
    subject, _ = auto(tmp_path, clock, Recorder(), admin=admin)
    asyncio.run(subject.load())
    return subject


def test_a_crash_is_backfilled_from_the_last_periodic_heartbeat_to_the_restart(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    run_until(tmp_path, clock, stop_at=1025.0, clean=False)  # heartbeats at 1000, 1010, 1020; dies at 1025
    subject = restart(tmp_path, clock, at=1300.0)
    clock.now = 1302.0  # the watcher's first read, after the start
    subject.observed("prod", enabled=True, types=TYPES)
    subject.observed("prod", enabled=True, types=TYPES)  # later reads: nothing more
    assert subject.states["prod"].pending == [
        Window(1020.0 - 60, 1300.0 + 60, ("authentication.failed", "user.created"))
    ]
    assert sample("idaas_bridge_backfill_gap_seconds", webhook="prod") == 400.0


def test_a_clean_shutdown_is_backfilled_from_the_moment_it_began(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    run_until(tmp_path, clock, stop_at=1025.0, clean=True)  # SIGTERM at 1025, the last write at 1030
    subject = restart(tmp_path, clock, at=1300.0)
    subject.observed("prod", enabled=True, types=TYPES)
    assert [(w.start, w.end) for w in subject.states["prod"].pending] == [(1025.0 - 60, 1360.0)]


def test_a_long_downtime_is_cut_to_the_maximum_nearest_the_start(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    run_until(tmp_path, clock, stop_at=1000.0, clean=True)
    subject = restart(tmp_path, clock, at=100_000.0)
    subject.observed("prod", enabled=True, types=TYPES)
    assert [(w.start, w.end) for w in subject.states["prod"].pending] == [(100_060.0 - 3600, 100_060.0)]


def test_the_first_start_has_no_downtime_to_backfill_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(1000.0)
    with caplog.at_level("INFO", logger="bridge.adminapi.recovery"):
        subject = restart(tmp_path, clock, at=1000.0)
    subject.observed("prod", enabled=True, types=TYPES)
    assert subject.states["prod"].pending == []
    assert [r.getMessage() for r in caplog.records].count(
        "no earlier run known (no heartbeat in the backfill state): no downtime to backfill"
    ) == 1


def test_a_start_that_crashes_before_its_first_read_keeps_the_earlier_downtime(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    run_until(tmp_path, clock, stop_at=1000.0, clean=True)
    # Started at 1200, heartbeats at 1200 and 1210, but the Admin API never answered: no first read.
    clock.now = 1200.0
    run_until(tmp_path, clock, stop_at=1215.0, clean=False)
    subject = restart(tmp_path, clock, at=1500.0)
    subject.observed("prod", enabled=True, types=TYPES)
    assert [(w.start, w.end) for w in subject.states["prod"].pending] == [(1000.0 - 60, 1560.0)]


def test_a_webhook_down_at_the_first_read_leaves_the_downtime_to_its_recovery(tmp_path: Path) -> None:
    """IDaaS disabled it (after 100 failures, or an admin): the recovery's gap starts at the last delivery,
    earlier than the heartbeat, and covers the downtime; one window, not two."""
    clock = Clock(1000.0)
    first, guard = auto(tmp_path, clock, Recorder())

    async def serve() -> None:
        await first.load()
        clock.now = 1005.0
        guard.record("prod", 200, 0.01, well_formed=True)
        clock.now = 1010.0
        first._note_deliveries()
        first._heartbeat()
        await first._save()

    asyncio.run(serve())
    subject = restart(tmp_path, clock, at=1400.0)
    subject.observed("prod", enabled=False, types=TYPES)
    assert subject.states["prod"].pending == []
    clock.now = 1500.0
    subject.observed("prod", enabled=True, types=TYPES)
    assert [(w.start, w.end) for w in subject.states["prod"].pending] == [(1005.0 - 60, 1560.0)]


def test_with_backfill_downtime_off_a_restart_schedules_nothing(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    run_until(tmp_path, clock, stop_at=1025.0, clean=False)
    subject = restart(tmp_path, clock, at=1300.0, admin=replace(ADMIN, backfill_downtime=False))
    subject.observed("prod", enabled=True, types=TYPES)
    assert subject.states["prod"].pending == []
