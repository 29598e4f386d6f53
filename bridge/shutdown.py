"""One shutdown budget, `server.shutdown_grace_seconds`, shared by every phase of a shutdown in order.

SIGTERM starts the clock. uvicorn stops accepting and waits for in-flight requests (bounded by the same
grace), then the lifespan drains the spool while Kafka answers, closes the spool and flushes both
producers, each phase getting only what the phases before it left. Kubernetes kills the pod
terminationGracePeriodSeconds after SIGTERM: a grace period per phase would add up past that and lose
the last phases' work without a word. Each phase's end is logged with the budget left and what it left
undone, and what was left undone is counted (idaas_bridge_shutdown_left_total).
"""

from __future__ import annotations

import logging
import time

from bridge import metrics

log = logging.getLogger(__name__)


class ShutdownBudget:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline: float | None = None
        self._phase_started = 0.0

    def start(self) -> None:
        """Start the clock (at SIGTERM); later calls keep the first start."""
        if self._deadline is None:
            now = time.monotonic()
            self._deadline = now + self.seconds
            self._phase_started = now

    def remaining(self) -> float:
        """Seconds left for the rest of the shutdown (the clock starts now if nothing started it)."""
        self.start()
        assert self._deadline is not None
        return max(0.0, self._deadline - time.monotonic())

    def phase_done(self, phase: str, **left: int) -> None:
        """Log the end of `phase` with the budget left, and count what it left undone (`left`)."""
        now = time.monotonic()
        assert set(left) <= set(metrics.SHUTDOWN_LEFT_KINDS), left
        for what, count in left.items():
            if count > 0:
                metrics.SHUTDOWN_LEFT.labels(what=what).inc(count)
        log.info(
            f"shutdown: {phase} done",
            extra={
                "phase": phase,
                "seconds": round(now - self._phase_started, 3),
                "budget_left_seconds": round(self.remaining(), 3),
                **left,
            },
        )
        self._phase_started = now
