"""Automatic backfill of the gap after a webhook recovered (`admin_api.backfill_automatic`), and of the
bridge's own downtime (`admin_api.backfill_downtime`).

A webhook IDaaS does not call (disabled, expired, deleted) loses every event until it is enabled again.
When the watcher sees a webhook come back enabled (after the bridge's guarded re-enable, or an admin's),
the events of the gap are backfilled from IDaaS's audit log (bridge/adminapi/backfill.py).

The gap starts at the last delivery to the webhook this bridge answered 2xx (it was durable then) before
the webhook was first seen down, and ends at its recovery; both ends are widened by
`backfill_margin_seconds` (IDaaS's clock against ours, its delivery delay), and the gap is cut to its last
`backfill_max_gap_seconds`. The last delivery is the cheapest reliable bound: the receiver knows it
without reading Kafka (failed deliveries never reach Kafka, and a Kafka tail holds other webhooks' and
backfilled records), and a bound that is too early only costs duplicates, which the backfill recognizes by
fingerprint. So it is kept per webhook in a small state file in the spool directory, written (fsync'd, off
the event loop) at most every FLUSH_SECONDS: a value a few seconds stale is earlier, hence safe. The time is
frozen when the webhook is first seen down, so the re-enable's test delivery cannot move it.

The state file also holds the mark "seen down" (a recovery noticed after a restart still counts) and the
windows still to backfill. A window is removed only once its backfill completed; a crash mid-window
resumes it at the next start from the backfill's checkpoint (one per webhook). Each webhook has one worker
that runs its windows one after another, and holds a lock file while it runs, so two backfills of one
webhook never overlap, not even from two processes sharing the spool directory. The worker waits until
`backfill_audit_lag_seconds` after the window's end before reading it, and retries a failed run with
back-off.

The bridge's own downtime is a gap too: IDaaS retries only 5xx, so a delivery refused or timed out while
the bridge was down (a crash, a restart, a lost node) is lost even when the webhook stays enabled. So the
state file also holds a heartbeat, when this bridge was last known serving: written with the periodic write
(hence at most FLUSH_SECONDS stale after a crash, which only widens the gap) and, at a clean shutdown, the
moment the shutdown began. At start the heartbeat becomes each webhook's `unserved_since`; the watcher's
first look at the webhook then schedules the window from it to this start through the same workers,
locks and checkpoints as a recovery (or, when IDaaS reports the webhook down, leaves it to the recovery,
whose gap starts earlier). `unserved_since` is kept in the file until then, so a start that crashes before
its first look keeps the earlier downtime. A webhook without a heartbeat (the first start, or a webhook new
in the configuration) was not served before: nothing to backfill.

Nothing here blocks the event loop or a delivery's answer: file work runs in threads, the Admin
API client and Kafka's consumer too, and the backfill publishes through the drainer's producer.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from confluent_kafka import KafkaException

from bridge import metrics
from bridge.adminapi.backfill import RESULTS, Backfill, BackfillReport
from bridge.adminapi.client import AdminApiClient, AdminApiError
from bridge.config import AdminApiSettings, Settings
from bridge.events.catalog import BY_NAME
from bridge.events.fingerprint import utc_second
from bridge.guard import AutoDisableGuard
from bridge.publish.kafka import KafkaPublisher, PublishError
from bridge.publish.spool import private, replace_durably

log = logging.getLogger(__name__)

STATE_FILE: Final = "backfill-state.json"
#: How often each webhook's last successful delivery is written to the state file (when it changed).
FLUSH_SECONDS: Final = 10.0
FIRST_RETRY_SECONDS: Final = 60.0
MAX_RETRY_SECONDS: Final = 3600.0
#: While another process holds a webhook's backfill lock, look again this often.
LOCK_RETRY_SECONDS: Final = 5.0


def checkpoint_name(webhook: str) -> str:
    return f"backfill-checkpoint-{webhook}.json"


def lock_name(webhook: str) -> str:
    return f"backfill-{webhook}.lock"


@dataclass(frozen=True)
class Window:
    """Unix seconds; `types`: the webhook types it subscribed to when it recovered."""

    start: float
    end: float
    types: tuple[str, ...]


def gap_window(
    last_delivery: float | None, recovered_at: float, settings: AdminApiSettings
) -> tuple[float, float, bool]:
    """(start, end, cut) of the gap of a webhook that recovered at `recovered_at` after its last successful
    delivery `last_delivery` (None: unknown, so the gap is as long as allowed); `cut` when the gap was
    longer than `backfill_max_gap_seconds` and only its last part is backfilled."""
    margin = settings.backfill_margin_seconds
    end = recovered_at + margin
    earliest = end - settings.backfill_max_gap_seconds
    start = earliest if last_delivery is None else last_delivery - margin
    return max(start, earliest), end, start < earliest


@dataclass
class WebhookState:
    #: The last delivery answered 2xx, as far as the state file knows.
    last_delivery: float | None = None
    #: When the webhook was first seen not enabled (None: not seen down), and its last delivery then.
    down_since: float | None = None
    down_last_delivery: float | None = None
    #: Windows still to backfill, oldest first.
    pending: list[Window] = field(default_factory=list)
    #: Heartbeat: when this bridge was last known serving the webhook.
    serving_at: float | None = None
    #: The last heartbeat of an earlier run, until its downtime is scheduled (the watcher's first look).
    unserved_since: float | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> WebhookState:
        return cls(
            raw.get("last_delivery"),
            raw.get("down_since"),
            raw.get("down_last_delivery"),
            [Window(w["start"], w["end"], tuple(w["types"])) for w in raw.get("pending", [])],
            raw.get("serving_at"),
            raw.get("unserved_since"),
        )


def load_state(path: Path, webhooks: Sequence[str]) -> dict[str, WebhookState]:
    """Each webhook's state from `path`; a missing or unreadable file (logged) knows nothing, which only
    makes gaps longer."""
    states = {name: WebhookState() for name in webhooks}
    try:
        document = orjson.loads(path.read_bytes())
        for name, raw in document.items():
            if name in states:
                states[name] = WebhookState.parse(raw)
    except FileNotFoundError:
        pass
    except (OSError, orjson.JSONDecodeError, AttributeError, KeyError, TypeError) as exc:
        log.warning(
            "backfill state unreadable; starting without it", extra={"path": str(path), "error": str(exc)}
        )
    return states


def try_lock(path: Path) -> int | None:
    """An exclusive lock on `path` (flock; released when the descriptor is closed), or None when another
    holder has it. Blocking (a file open): run it in a thread."""
    descriptor = private(str(path), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


Runner = Callable[[str, Window, BackfillReport], Awaitable[None]]


class AutoBackfill:
    """Told by the watcher what it sees (`observed`) and by the re-enable when it re-enabled (`recovered`);
    `run()` is the background task that backfills the gaps."""

    def __init__(
        self,
        settings: Settings,
        client: AdminApiClient,
        publisher: KafkaPublisher,
        guard: AutoDisableGuard,
        clock: Callable[[], float] = time.time,
        runner: Runner | None = None,
    ) -> None:
        self._settings = settings
        self._admin = settings.admin_api
        self._client = client
        self._publisher = publisher
        self._guard = guard
        self._clock = clock
        self._run_backfill = runner or self._backfill
        self._directory = Path(settings.spool.path)
        self._names = [hook.name for hook in settings.webhooks]
        self.states = {name: WebhookState() for name in self._names}
        self._wake = {name: asyncio.Event() for name in self._names}
        self._dirty = asyncio.Event()
        #: When this run started serving (load), and when its shutdown began (stopping); None: not yet.
        self._started_at: float | None = None
        self._stopped_at: float | None = None
        for name in self._names:
            for result in metrics.BACKFILL_RUN_RESULTS:
                metrics.BACKFILL_RUNS.labels(webhook=name, result=result)
            metrics.BACKFILL_GAP.labels(webhook=name)

    async def load(self) -> None:
        """Read the state file (before the watcher's first poll), and note the downtime since the last
        heartbeat of the earlier run."""
        self.states = await asyncio.to_thread(load_state, self._directory / STATE_FILE, self._names)
        self._started_at = self._clock()
        unknown = []
        for name, state in self.states.items():
            if not self._admin.backfill_downtime:
                state.unserved_since = None
            elif state.unserved_since is None:  # else a start that crashed before its first look left it
                state.unserved_since = state.serving_at
                if state.unserved_since is None:
                    unknown.append(name)
            state.serving_at = self._started_at
            if state.pending:
                log.warning(
                    "backfill windows left by an earlier run; resuming",
                    extra={"webhook": name, "windows": len(state.pending)},
                )
                self._wake[name].set()
        if unknown:
            log.info(
                "no earlier run known (no heartbeat in the backfill state): no downtime to backfill",
                extra={"webhooks": unknown},
            )
        self._dirty.set()

    def stopping(self) -> None:
        """The shutdown began (SIGTERM): the last moment this bridge is known serving, for the next start."""
        if self._stopped_at is None:
            self._stopped_at = self._clock()

    # --- what the watcher and the re-enable report ---------------------------------------------------

    def last_delivery(self, webhook: str) -> float | None:
        known = [t for t in (self.states[webhook].last_delivery, self._guard.delivered_at(webhook)) if t]
        return max(known, default=None)

    def observed(self, webhook: str, enabled: bool, types: Sequence[str]) -> None:
        """The watcher read `webhook`'s state: not enabled marks it down (once); enabled after that is a
        recovery."""
        state = self.states[webhook]
        unserved_since, state.unserved_since = state.unserved_since, None
        if unserved_since is not None:
            self._dirty.set()
            if enabled and state.down_since is None:
                assert self._started_at is not None  # load() set unserved_since
                self._schedule(webhook, unserved_since, self._started_at, types, downtime=True)
                return
            # Down, or already marked down: the recovery's gap, from the last delivery, covers the downtime.
        if not enabled:
            if state.down_since is None:
                state.down_since, state.down_last_delivery = self._clock(), self.last_delivery(webhook)
                self._dirty.set()
            return
        if state.down_since is not None:
            self.recovered(webhook, self._clock(), types)

    def recovered(self, webhook: str, at: float, types: Sequence[str]) -> None:
        """`webhook` is enabled again since `at`: schedule the backfill of its gap."""
        state = self.states[webhook]
        last = state.down_last_delivery if state.down_since is not None else self.last_delivery(webhook)
        state.down_since = state.down_last_delivery = None
        self._schedule(webhook, last, at, types, downtime=False)

    def _schedule(
        self, webhook: str, since: float | None, until: float, types: Sequence[str], downtime: bool
    ) -> None:
        """Queue the backfill of `webhook`'s gap from `since` (None: unknown) to `until`, for its mapped
        subscribed `types`."""
        start, end, cut = gap_window(since, until, self._admin)
        mapped = tuple(sorted(kind for kind in types if kind in BY_NAME))
        self.states[webhook].pending.append(Window(start, end, mapped))
        metrics.BACKFILL_GAP.labels(webhook=webhook).set(end - start)
        log.warning(
            f"webhook {webhook} was not served while the bridge was down; that downtime will be backfilled "
            "from the audit log"
            if downtime
            else f"webhook {webhook} recovered; its gap will be backfilled from the audit log",
            extra={
                "webhook": webhook,
                "gap_start": utc_second(datetime.fromtimestamp(start, UTC)),
                "gap_end": utc_second(datetime.fromtimestamp(end, UTC)),
                "gap_start_known": since is not None,
                "gap_cut_to_max_seconds": self._admin.backfill_max_gap_seconds if cut else None,
            },
        )
        self._dirty.set()
        self._wake[webhook].set()

    # --- the background task -------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the state file current and backfill every pending window, until cancelled."""
        tasks = [asyncio.create_task(self._save_forever(), name="backfill-state")]
        tasks += [asyncio.create_task(self._work(name), name=f"backfill-{name}") for name in self._names]
        try:
            while True:
                self._note_deliveries()
                self._heartbeat()
                await asyncio.sleep(FLUSH_SECONDS)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._note_deliveries()
            self._heartbeat()
            await self._save()  # the last deliveries and heartbeat, for the next start

    def _heartbeat(self) -> None:
        """This bridge is serving now (or was until its shutdown began)."""
        now = self._clock() if self._stopped_at is None else self._stopped_at
        for state in self.states.values():
            state.serving_at = now
        self._dirty.set()

    def _note_deliveries(self) -> None:
        for name, state in self.states.items():
            delivered = self._guard.delivered_at(name)
            if delivered is not None and (state.last_delivery is None or delivered > state.last_delivery):
                state.last_delivery = delivered
                self._dirty.set()

    async def _save_forever(self) -> None:
        while True:
            await self._dirty.wait()
            await self._save()

    async def _save(self) -> None:
        self._dirty.clear()
        path = self._directory / STATE_FILE
        document = orjson.dumps({name: asdict(state) for name, state in self.states.items()})
        try:
            await asyncio.to_thread(replace_durably, path, document)
        except OSError as exc:
            log.error("could not write the backfill state", extra={"path": str(path), "error": str(exc)})

    async def _work(self, webhook: str) -> None:
        """Backfill `webhook`'s windows one at a time, oldest first."""
        state, wake = self.states[webhook], self._wake[webhook]
        retry = FIRST_RETRY_SECONDS
        while True:
            if not state.pending:
                await wake.wait()
                wake.clear()
                continue
            window = state.pending[0]
            ready_in = window.end + self._admin.backfill_audit_lag_seconds - self._clock()
            if ready_in > 0:  # the audit log may not hold the gap's last events yet
                await asyncio.sleep(ready_in)
                continue
            done = await self._locked(webhook, window)
            if done is None:
                await asyncio.sleep(LOCK_RETRY_SECONDS)
            elif done:
                state.pending.remove(window)
                self._dirty.set()
                retry = FIRST_RETRY_SECONDS
            else:
                await asyncio.sleep(retry)
                retry = min(retry * 2, MAX_RETRY_SECONDS)

    async def _locked(self, webhook: str, window: Window) -> bool | None:
        """Run one backfill under the webhook's lock: whether it completed; None while another holds it."""
        path = self._directory / lock_name(webhook)
        try:
            lock = await asyncio.to_thread(try_lock, path)
        except OSError as exc:
            log.error("could not take the backfill lock", extra={"path": str(path), "error": str(exc)})
            return False
        if lock is None:
            return None
        report = BackfillReport()
        try:
            await self._run_backfill(webhook, window, report)
        except (AdminApiError, PublishError, KafkaException, TimeoutError, OSError) as exc:
            log.error(
                f"backfill of webhook {webhook}'s gap failed; retrying from its checkpoint",
                extra={"webhook": webhook, "error": str(exc), **self._summary(report)},
            )
            result = "failed"
        else:
            log.warning(
                f"backfill of webhook {webhook}'s gap completed",
                extra={"webhook": webhook, **self._summary(report)},
            )
            result = "completed"
        finally:
            await asyncio.to_thread(os.close, lock)
            for (kind, outcome), count in report.counts.items():
                label = kind if kind in BY_NAME else "unknown"
                metrics.BACKFILL_EVENTS.labels(webhook=webhook, event_type=label, result=outcome).inc(count)
        metrics.BACKFILL_RUNS.labels(webhook=webhook, result=result).inc()
        return result == "completed"

    @staticmethod
    def _summary(report: BackfillReport) -> dict[str, int]:
        return {result: sum(n for (_, r), n in report.counts.items() if r == result) for result in RESULTS}

    async def _backfill(self, webhook: str, window: Window, report: BackfillReport) -> None:
        backfill = Backfill(
            self._settings,
            self._client,
            self._publisher,
            webhook=webhook,
            types=window.types,
            checkpoint=checkpoint_name(webhook),
        )
        start = datetime.fromtimestamp(window.start, UTC)
        await backfill.run(start, datetime.fromtimestamp(window.end, UTC), report=report)
