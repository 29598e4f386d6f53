"""The auto-disable guard: count answers the way IDaaS does, so an alert fires long before 100.

IDaaS disables a webhook after 100 consecutive failed attempts; a failure is any non-2xx answer or an answer
slower than 3 s (which IDaaS never sees). The streak is exported per webhook with the last success time.
"""

from __future__ import annotations

import time
from typing import Final

from bridge import metrics
from bridge.config import IDAAS_DEADLINE_SECONDS

DISABLE_AFTER: Final = 100


class AutoDisableGuard:
    def __init__(self, webhooks: list[str]) -> None:
        self.streaks = dict.fromkeys(webhooks, 0)
        for name in webhooks:
            metrics.FAILURE_STREAK.labels(webhook=name).set(0)

    def record(self, webhook: str, status_code: int, elapsed_seconds: float) -> None:
        if 200 <= status_code < 300 and elapsed_seconds < IDAAS_DEADLINE_SECONDS:
            self.streaks[webhook] = 0
            metrics.LAST_SUCCESS.labels(webhook=webhook).set(time.time())
        else:
            self.streaks[webhook] += 1
        metrics.FAILURE_STREAK.labels(webhook=webhook).set(self.streaks[webhook])
