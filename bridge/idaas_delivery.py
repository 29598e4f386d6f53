"""IDaaS's side of a webhook: how it judges an attempt, when it retries, and when its count of failed
deliveries disables the webhook. `idaas-bridge simulate` and the test suite's IDaaS simulator both run this
one model; the daemon's guard (bridge/guard.py) judges its own answers with the same `idaas_success`.

What the contract says (../shared/idaas-webhooks.md, section 4) and what we decided where it is silent:
- an attempt succeeds only when answered 2xx within IDAAS_DEADLINE_SECONDS. Anything else fails: another
  status, a slower answer (IDaaS has given up by then), or no answer at all (connection refused, TLS
  failure, timeout);
- only an attempt answered 5xx in time is retried, after ~2 s and then ~4 s with jitter, 3 attempts in all.
  A 4xx is never retried (documented); that a timeout or a connection error is not retried either is
  inferred from "only for server-side failures that return a 5xx";
- a delivery fails when its last attempt failed, and counts once however many attempts it took: the docs
  say "100 consecutive delivery failures" (our reading; the guard counts attempts, so it warns earlier);
- a successful delivery resets the streak; deliveries count in the order they end;
- at DISABLE_AFTER the webhook is disabled: IDaaS sends nothing more, later events are lost to the webhook
  (the audit log still has them) until an admin re-enables it, which starts a new streak (inferred; to
  confirm on a real tenant, docs/operations.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from bridge.config import IDAAS_DEADLINE_SECONDS, IDAAS_RETRY_DELAYS_SECONDS, IDAAS_RETRY_JITTER_SECONDS

DISABLE_AFTER: Final = 100


def idaas_success(status_code: int | None, elapsed_seconds: float) -> bool:
    """Whether IDaaS counts an attempt as successful: a 2xx within its deadline (None: no answer)."""
    return status_code is not None and 200 <= status_code < 300 and elapsed_seconds < IDAAS_DEADLINE_SECONDS


def retry_delay(
    attempts_made: int, status_code: int | None, elapsed_seconds: float, jitter: random.Random
) -> float | None:
    """Seconds until IDaaS's next attempt of a delivery whose latest attempt (number `attempts_made`) was
    answered `status_code` after `elapsed_seconds`; None when the delivery is over."""
    retryable = (
        status_code is not None and 500 <= status_code < 600 and elapsed_seconds < IDAAS_DEADLINE_SECONDS
    )
    if not retryable or attempts_made > len(IDAAS_RETRY_DELAYS_SECONDS):
        return None
    return IDAAS_RETRY_DELAYS_SECONDS[attempts_made - 1] + jitter.uniform(0, IDAAS_RETRY_JITTER_SECONDS)


@dataclass
class AutoDisableModel:
    """One webhook's state as IDaaS keeps it: enabled or not, and the streak of failed deliveries."""

    #: The streak that disables the webhook (lower than DISABLE_AFTER only to demonstrate it quickly).
    disable_after: int = DISABLE_AFTER
    #: False: count as IDaaS does but keep the webhook enabled (see what would have happened next).
    auto_disable: bool = True
    enabled: bool = True
    streak: int = 0
    longest: int = 0
    #: Deliveries recorded; `reached_at` is the number of the one whose failure reached disable_after.
    recorded: int = 0
    reached_at: int | None = None

    @property
    def reached(self) -> bool:
        """Whether the streak reached the threshold: IDaaS disabled (or, modelled off, would have)."""
        return self.reached_at is not None

    def record(self, delivered: bool) -> None:
        """Count the outcome of one delivery that ended. One that ends after the webhook was disabled (it
        was under way) changes nothing: only a re-enable does."""
        if not self.enabled:
            return
        self.recorded += 1
        self.streak = 0 if delivered else self.streak + 1
        self.longest = max(self.longest, self.streak)
        if self.streak >= self.disable_after and self.reached_at is None:
            self.reached_at = self.recorded
            self.enabled = not self.auto_disable

    def set_enabled(self, enabled: bool) -> None:
        """An admin (or the Admin API) switched the webhook; re-enabling a disabled one starts afresh."""
        if enabled and not self.enabled:
            self.streak = 0
            self.reached_at = None
        self.enabled = enabled
