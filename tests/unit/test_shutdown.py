"""The shutdown budget: one deadline for every phase, what each phase left logged and counted."""

from __future__ import annotations

import logging
import time

import pytest

from bridge import metrics
from bridge.shutdown import ShutdownBudget


def left(what: str) -> float:
    return metrics.SHUTDOWN_LEFT.labels(what=what)._value.get()


def test_phases_share_one_deadline_started_by_the_first_start() -> None:
    budget = ShutdownBudget(0.5)
    budget.start()
    time.sleep(0.2)
    budget.start()  # the lifespan starting it again (after SIGTERM did) does not reset the clock
    assert 0.0 < budget.remaining() <= 0.3
    time.sleep(0.35)
    assert budget.remaining() == 0.0  # later phases get nothing, never a grace period of their own


def test_a_phase_logs_the_budget_left_and_counts_what_it_left(caplog: pytest.LogCaptureFixture) -> None:
    before = left("spooled_records"), left("requests")
    budget = ShutdownBudget(10)
    with caplog.at_level(logging.INFO, logger="bridge.shutdown"):
        budget.phase_done("drain", spooled_records=7, requests=0)
    [line] = caplog.records
    assert line.getMessage() == "shutdown: drain done"
    assert line.spooled_records == 7 and 9 < line.budget_left_seconds <= 10  # type: ignore[attr-defined]
    assert left("spooled_records") == before[0] + 7 and left("requests") == before[1]
