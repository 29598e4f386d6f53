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

With `server.workers` above 1, IDaaS's attempts are spread over the workers, so the count must be one for
the pod: the streak, the last success and the warnings raised live in shared memory the serving process
creates before it forks (`GuardState.shared`), and every change of a streak happens under one lock, with
the exported gauge set inside it (its `mostrecent` mode then shows the value of the last change).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Callable, Iterator, Mapping, MutableSequence, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final, Generic, TypeVar, cast

from bridge import metrics
from bridge.idaas_delivery import DISABLE_AFTER, idaas_success
from bridge.metric_value import MetricValue

#: The streak at which the bridge warns (alert IdaasBridgeWebhookAutoDisableRisk) and, with the Admin API
#: configured, reads the webhooks' state at once.
STREAK_WARNING: Final = DISABLE_AFTER // 5


#: How often the worker that runs the Admin API watcher looks for warnings raised in other workers.
WARNING_RELAY_SECONDS: Final = 0.5

Value = TypeVar("Value", int, float)


class GuardState:
    """Per webhook: the failure streak, the last success time and the warnings raised, with the lock
    every streak change takes. Private to the process, or (`shared`) in memory forked workers share."""

    def __init__(self, webhooks: Sequence[str], start: float, shared: bool = False) -> None:
        self.webhooks = tuple(webhooks)
        #: When the bridge started: each webhook's last success until it has one.
        self.start = start
        self.index = {name: i for i, name in enumerate(self.webhooks)}
        self.shared = shared
        count = len(self.webhooks)
        self.lock: AbstractContextManager[Any]
        if shared:
            fork = multiprocessing.get_context("fork")
            self.streaks = cast(MutableSequence[int], fork.RawArray("q", count))
            self.warnings = cast(MutableSequence[int], fork.RawArray("q", count))
            self.last_success = cast(MutableSequence[float], fork.RawArray("d", [start] * count))
            self.lock = fork.Lock()
        else:
            self.streaks = array.array("q", [0] * count)
            self.warnings = array.array("q", [0] * count)
            self.last_success = array.array("d", [start] * count)
            self.lock = contextlib.nullcontext()


class _Column(Mapping[str, Value], Generic[Value]):
    """One of GuardState's columns read by webhook name (the watcher and the tests read it as a dict)."""

    def __init__(self, index: Mapping[str, int], column: Sequence[Value]) -> None:
        self._index = index
        self._column: Sequence[Value] = column

    def __getitem__(self, webhook: str) -> Value:
        return self._column[self._index[webhook]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


class AutoDisableGuard:
    def __init__(
        self, webhooks: list[str], clock: Callable[[], float] = time.time, state: GuardState | None = None
    ) -> None:
        self._state = state = state or GuardState(webhooks, clock())
        self.streaks: Mapping[str, int] = _Column(state.index, state.streaks)
        #: Unix time of each webhook's last successful answer (the start time until there is one).
        self.last_success: Mapping[str, float] = _Column(state.index, state.last_success)
        #: Called with the webhook's name when its streak reaches STREAK_WARNING (the watcher polls).
        self.on_warning: Callable[[str], None] | None = None
        self._clock = clock
        #: Each webhook's series by its index, looked up once: a labels() look-up per answer was a third of
        #: record(). A last-success series exists only once the webhook has a success (none reads as 0).
        self._streak_gauges = [metrics.FAILURE_STREAK.labels(webhook=name) for name in state.webhooks]
        self._last_success_values: list[MetricValue | None] = [None] * len(state.webhooks)
        for index, gauge in enumerate(self._streak_gauges):  # a restarted worker exports the pod's streak
            gauge.set(state.streaks[index])

    def record(self, webhook: str, status_code: int, elapsed_seconds: float, well_formed: bool) -> None:
        """Count one answer; `well_formed` is whether the request carried an IDaaS-shaped signature."""
        if not well_formed:
            return
        if idaas_success(status_code, elapsed_seconds):
            state = self._state
            index = state.index[webhook]
            if state.streaks[index]:
                with state.lock:
                    state.streaks[index] = 0
                    self._streak_gauges[index].set(0)
            state.last_success[index] = now = self._clock()
            value = self._last_success_values[index]
            if value is None:
                series = metrics.LAST_SUCCESS.labels(webhook=webhook)
                value = self._last_success_values[index] = metrics.value_of(series)
            value.set(now)
        else:
            self._failed(webhook)

    def delivered_at(self, webhook: str) -> float | None:
        """When the bridge (any worker) last answered a delivery to `webhook` 2xx (it was durable then);
        None when it has not answered one since it started."""
        last = self.last_success[webhook]
        return last if last > self._state.start else None

    def hang_up(self, webhook: str, well_formed: bool) -> None:
        """A client closed the connection before its answer: a failed attempt if IDaaS sent it."""
        if well_formed:
            self._failed(webhook)

    def _failed(self, webhook: str) -> None:
        state = self._state
        index = state.index[webhook]
        with state.lock:
            state.streaks[index] = streak = state.streaks[index] + 1
            self._streak_gauges[index].set(streak)
            if streak == STREAK_WARNING:
                state.warnings[index] += 1
        if streak == STREAK_WARNING and not state.shared and self.on_warning is not None:
            self.on_warning(webhook)

    async def relay_warnings(self) -> None:
        """Call on_warning for warnings raised in any worker (shared state), until cancelled: the Admin
        API watcher runs in one worker, the streak reaches its warning level in whichever answered."""
        state = self._state
        seen = list(state.warnings)
        while True:
            await asyncio.sleep(WARNING_RELAY_SECONDS)
            for index, raised in enumerate(list(state.warnings)):
                if raised != seen[index] and self.on_warning is not None:
                    self.on_warning(state.webhooks[index])
                seen[index] = raised
