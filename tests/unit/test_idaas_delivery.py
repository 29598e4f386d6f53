"""The model of IDaaS's webhook side: what an attempt's outcome is, which are retried and when, and the
streak of failed deliveries that disables the webhook."""

from __future__ import annotations

import random

import pytest

from bridge.config import IDAAS_DEADLINE_SECONDS, IDAAS_RETRY_DELAYS_SECONDS, IDAAS_RETRY_JITTER_SECONDS
from bridge.idaas_delivery import DISABLE_AFTER, AutoDisableModel, idaas_success, retry_delay


@pytest.mark.parametrize(
    ("status", "elapsed", "succeeded"),
    [
        (200, 0.01, True),
        (202, 2.9, True),
        (299, 0.01, True),
        (200, IDAAS_DEADLINE_SECONDS, False),  # too late: IDaaS has given up on the attempt
        (300, 0.01, False),
        (401, 0.01, False),
        (503, 0.01, False),
        (None, 0.01, False),  # no answer: connection refused, TLS failure
    ],
)
def test_an_attempt_succeeds_only_with_a_2xx_within_the_deadline(
    status: int | None, elapsed: float, succeeded: bool
) -> None:
    assert idaas_success(status, elapsed) is succeeded


def test_a_5xx_is_retried_twice_after_about_2_then_4_seconds() -> None:
    jitter = random.Random(7)
    first = retry_delay(1, 503, 0.1, jitter)
    second = retry_delay(2, 500, 0.1, jitter)
    assert first is not None and second is not None
    assert IDAAS_RETRY_DELAYS_SECONDS == (2.0, 4.0)
    assert 2.0 <= first <= 2.0 + IDAAS_RETRY_JITTER_SECONDS
    assert 4.0 <= second <= 4.0 + IDAAS_RETRY_JITTER_SECONDS
    assert retry_delay(3, 503, 0.1, jitter) is None  # 3 attempts in all
    assert retry_delay(1, 599, 0.1, jitter) is not None


@pytest.mark.parametrize(
    ("status", "elapsed"),
    [(200, 0.1), (401, 0.1), (404, 0.1), (429, 0.1), (None, 0.1), (None, 3.0), (503, 3.0), (600, 0.1)],
)
def test_nothing_but_a_timely_5xx_is_retried(status: int | None, elapsed: float) -> None:
    assert retry_delay(1, status, elapsed, random.Random()) is None


def fail(model: AutoDisableModel, times: int) -> None:
    for _ in range(times):
        model.record(delivered=False)


def test_the_webhook_is_disabled_at_the_hundredth_consecutive_failed_delivery() -> None:
    model = AutoDisableModel()
    assert model.disable_after == DISABLE_AFTER == 100
    fail(model, 99)
    assert model.enabled and model.streak == 99 and not model.reached
    fail(model, 1)
    assert not model.enabled and model.reached
    assert model.streak == model.longest == 100 and model.reached_at == 100


def test_a_successful_delivery_resets_the_streak() -> None:
    model = AutoDisableModel()
    fail(model, 99)
    model.record(delivered=True)
    assert model.streak == 0 and model.longest == 99
    fail(model, 99)
    assert model.enabled and not model.reached
    fail(model, 1)
    assert not model.enabled and model.reached_at == 200


def test_a_delivery_ending_after_the_disable_changes_nothing() -> None:
    model = AutoDisableModel(disable_after=3)
    fail(model, 3)
    model.record(delivered=True)  # was under way when the webhook was disabled
    assert not model.enabled and model.streak == 3 and model.recorded == 3


def test_re_enabling_starts_a_new_streak() -> None:
    model = AutoDisableModel(disable_after=3)
    fail(model, 3)
    model.set_enabled(True)
    assert model.enabled and model.streak == 0 and not model.reached
    fail(model, 2)
    assert model.enabled
    fail(model, 1)
    assert not model.enabled and model.reached_at == 6


def test_an_admin_disabling_the_webhook_is_not_an_auto_disable() -> None:
    model = AutoDisableModel()
    fail(model, 5)
    model.set_enabled(False)
    assert not model.enabled and not model.reached and model.streak == 5
    model.set_enabled(False)
    assert model.streak == 5  # switching to the state it has resets nothing
    model.set_enabled(True)
    assert model.enabled and model.streak == 0


def test_without_auto_disable_the_streak_goes_on_and_the_verdict_stays() -> None:
    model = AutoDisableModel(disable_after=3, auto_disable=False)
    fail(model, 5)
    assert model.enabled and model.reached and model.reached_at == 3
    assert model.streak == model.longest == 5
    model.record(delivered=True)
    assert model.streak == 0 and model.reached  # IDaaS would have disabled it at the third
