"""The auto-disable guard: count answers the way IDaaS does, so an alert fires long before 100.

IDaaS disables a webhook after DISABLE_AFTER consecutive failed deliveries (bridge/idaas_delivery.py); an
attempt fails with any non-2xx answer or an answer slower than 3 s (which IDaaS never sees). The guard counts
failed attempts: a retried delivery adds up to 3, so for the requests it answers its streak runs ahead of
IDaaS's count and warns early. The streak is exported per webhook with the last success time.

The streak counts only requests IDaaS itself could have sent, i.e. those carrying a well-formed IDaaS
signature (`auth.AuthFailure.well_formed`; every request that got past the header check is one):
- a 2xx within 3 s resets it;
- any other answer to such a request raises it, whatever the MAC outcome: a wrong token or a public URL
  that differs from the registered callback is exactly the misconfiguration that auto-disables a real
  webhook; so do its 5xx (spool full, overload), 408/413 and answers slower than 3 s, and a hang-up
  mid-body (IDaaS only hangs up once it has given up on the attempt);
- junk without a plausible signature (no signature headers, unparseable ones, a legacy value that is not
  64 hex digits) does not move it: anyone on the internet can send that, and IDaaS never sees those answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from bridge import metrics
from bridge.idaas_delivery import DISABLE_AFTER, idaas_success

#: The streak at which the bridge warns (alert IdaasBridgeWebhookAutoDisableRisk) and, with the Admin API
#: configured, reads the webhooks' state at once.
STREAK_WARNING: Final = DISABLE_AFTER // 5


class AutoDisableGuard:
    def __init__(self, webhooks: list[str], clock: Callable[[], float] = time.time) -> None:
        self.streaks = dict.fromkeys(webhooks, 0)
        self.started_at = clock()
        #: Unix time of each webhook's last successful answer (the start time until there is one).
        self.last_success = dict.fromkeys(webhooks, self.started_at)
        #: Called with the webhook's name when its streak reaches STREAK_WARNING (the watcher polls).
        self.on_warning: Callable[[str], None] | None = None
        self._clock = clock
        for name in webhooks:
            metrics.FAILURE_STREAK.labels(webhook=name).set(0)

    def record(self, webhook: str, status_code: int, elapsed_seconds: float, well_formed: bool) -> None:
        """Count one answer; `well_formed` is whether the request carried an IDaaS-shaped signature."""
        if not well_formed:
            return
        if idaas_success(status_code, elapsed_seconds):
            self.streaks[webhook] = 0
            self.last_success[webhook] = now = self._clock()
            metrics.LAST_SUCCESS.labels(webhook=webhook).set(now)
            metrics.FAILURE_STREAK.labels(webhook=webhook).set(0)
        else:
            self._failed(webhook)

    def delivered_at(self, webhook: str) -> float | None:
        """When this process last answered a delivery to `webhook` 2xx (it was durable then); None when it
        has not answered one yet."""
        last = self.last_success[webhook]
        return last if last > self.started_at else None

    def hang_up(self, webhook: str, well_formed: bool) -> None:
        """A client closed the connection before its answer: a failed attempt if IDaaS sent it."""
        if well_formed:
            self._failed(webhook)

    def _failed(self, webhook: str) -> None:
        self.streaks[webhook] += 1
        metrics.FAILURE_STREAK.labels(webhook=webhook).set(self.streaks[webhook])
        if self.streaks[webhook] == STREAK_WARNING and self.on_warning is not None:
            self.on_warning(webhook)
