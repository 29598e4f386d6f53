"""`idaas-bridge simulate`: deliver signed sample events exactly as IDaaS does, to rehearse before
pointing IDaaS at the bridge.

IDaaS's rules are the model in bridge/idaas_delivery.py: each attempt must be answered 2xx within
IDAAS_DEADLINE_SECONDS; only a 5xx is retried; a delivery whose attempts all failed is one failure; after
DISABLE_AFTER consecutive failed deliveries IDaaS disables the webhook and sends nothing more. The run does
the same (events after that are not delivered), says what the operator would have to do, and exits
EXIT_WEBHOOK_DISABLED.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import ssl
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bridge import auth
from bridge.cli.command import Command, positive
from bridge.cli.display import progress_bar
from bridge.cli.exits import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_WEBHOOK_DISABLED,
    CommandError,
    from_os_error,
)
from bridge.config import IDAAS_DEADLINE_SECONDS, IDAAS_RETRY_DELAYS_SECONDS, ConfigError, Settings
from bridge.events.samples import sample_deliveries
from bridge.formats.base import rfc3339
from bridge.idaas_delivery import DISABLE_AFTER, AutoDisableModel, idaas_success, retry_delay

#: A tenant's usual traffic: mostly sign-ins, some user administration, few authenticator changes.
#: Types not listed weigh 1.
MIX_WEIGHTS: Final = {
    "authentication.succeeded": 60,
    "authentication.failed": 15,
    "user.updated": 4,
    "user.created": 2,
    "password.updated": 2,
}


#: Attempts that got no answer because the bridge is down or hung: the outage IDaaS counts. Any other
#: transport error on the first delivery (untrusted certificate, DNS) is this run's own setup: exit 4.
REFUSED: Final = "connection refused"
TIMEOUT: Final = "timeout"


@dataclass(frozen=True, slots=True)
class Attempt:
    #: The HTTP status, or None when no answer came (timeout, connection error).
    status: int | None
    elapsed: float
    error: str | None = None
    #: Why no connection could be made, with what to do, unless it was refused or timed out.
    unreachable: CommandError | None = None

    @property
    def succeeded(self) -> bool:
        return idaas_success(self.status, self.elapsed)


@dataclass
class Delivery:
    type: str
    #: Empty when IDaaS had disabled the webhook before this event: it was never sent.
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def sent(self) -> bool:
        return bool(self.attempts)

    @property
    def accepted(self) -> bool:
        return self.sent and self.attempts[-1].succeeded


@dataclass(frozen=True)
class Target:
    webhook: str
    url: str
    #: The URL IDaaS signs (@target-uri): the one the bridge reconstructs, which may differ behind a proxy.
    signed_url: str
    token: str


def target(settings: Settings, webhook: str | None, url: str | None) -> Target:
    """Where to send and what to sign with, from the flags and the configuration."""
    hook = settings.webhook(webhook) if webhook else settings.webhooks[0]
    if hook is None:
        raise ConfigError(
            f"--webhook {webhook!r} is not configured (configured: {[h.name for h in settings.webhooks]})"
        )
    server = settings.server
    path = f"/webhooks/{hook.name}"
    if url is None:
        host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
        url = f"{'https' if server.tls else 'http'}://{host}:{server.port}{path}"
    if hook.public_url:
        signed = hook.public_url
    elif server.public_base_url:
        signed = server.public_base_url.rstrip("/") + urlsplit(url).path
    else:
        signed = url
    return Target(hook.name, url, signed, hook.tokens[0])


def plan(types: Sequence[str], count: int, seed: int | None) -> list[str]:
    """The event type of each delivery: each chosen type once first, then the realistic mix."""
    chosen = list(types)
    picker = random.Random(seed)
    weights = [MIX_WEIGHTS.get(name, 1) for name in chosen]
    rest = picker.choices(chosen, weights, k=max(0, count - len(chosen)))
    return (chosen + rest)[:count]


def _os_error(exc: BaseException) -> OSError | None:
    """The most specific OSError (refused, TLS, DNS) behind an httpx transport error: anyio wraps the
    socket's own errors in a generic "All connection attempts failed"."""
    found: OSError | None = None
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            found = seen
        if isinstance(seen, BaseExceptionGroup) and seen.exceptions:
            seen = seen.exceptions[0]
        else:
            seen = seen.__cause__ or seen.__context__
    return found


class Simulator:
    def __init__(
        self, target: Target, verify: ssl.SSLContext | bool, rate: float, model: AutoDisableModel
    ) -> None:
        self.target = target
        self.rate = rate
        #: IDaaS's state of the webhook; each delivery is counted in it as it ends.
        self.model = model
        #: Set when the model disables the webhook: every pause ends at once, nothing more is sent.
        self.disabled = asyncio.Event()
        self.samples = {sample["type"]: sample for sample in sample_deliveries()}
        self.client = httpx.AsyncClient(
            verify=verify, timeout=IDAAS_DEADLINE_SECONDS, limits=httpx.Limits(max_connections=None)
        )
        self.jitter = random.Random()

    async def attempt(self, body: bytes) -> Attempt:
        headers = auth.sign(self.target.token, "POST", self.target.signed_url, body, int(time.time()))
        started = time.perf_counter()
        try:
            answer = await asyncio.wait_for(
                self.client.post(self.target.url, content=body, headers=headers), IDAAS_DEADLINE_SECONDS
            )
        except (TimeoutError, httpx.TimeoutException):
            return Attempt(None, time.perf_counter() - started, TIMEOUT)
        except httpx.TransportError as exc:
            elapsed = time.perf_counter() - started
            cause = _os_error(exc)
            if isinstance(cause, ConnectionRefusedError):
                return Attempt(None, elapsed, REFUSED)
            problem = (
                from_os_error(cause, self.target.url)
                if cause is not None
                else CommandError(f"{self.target.url}: {exc}", "check the URL")
            )
            return Attempt(None, elapsed, str(problem), problem)
        return Attempt(answer.status_code, time.perf_counter() - started)

    async def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less once the webhook is disabled (nothing is sent after that)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.disabled.wait(), max(0.0, seconds))

    async def deliver(self, event_type: str, number: int) -> Delivery:
        """One delivery while IDaaS has the webhook enabled: the attempts and retries IDaaS makes, the same
        id each time; a retry due after the webhook was disabled is not made."""
        # Stamped now, as IDaaS stamps an event it sends: the samples' own times are made up (months from
        # now) and would reach the SIEM as events of another day.
        body = orjson.dumps(
            {
                **self.samples[event_type],
                "id": f"sim-{time.time_ns()}-{number}",
                "eventTime": rfc3339(datetime.now(UTC)),
            }
        )
        delivery = Delivery(event_type)
        while self.model.enabled:
            attempt = await self.attempt(body)
            delivery.attempts.append(attempt)
            delay = retry_delay(len(delivery.attempts), attempt.status, attempt.elapsed, self.jitter)
            if delay is None:
                break
            await self.pause(delay)
        if delivery.sent:
            self.model.record(delivery.accepted)
            if not self.model.enabled:
                self.disabled.set()
        return delivery

    async def run(self, types: list[str], progress: Progress) -> list[Delivery]:
        task = progress.add_task("", total=len(types))
        try:
            # The first delivery alone: when this run cannot connect at all (its own --cafile or --url), say
            # so instead of counting failures; a refused connection is the outage IDaaS counts.
            first = await self.deliver(types[0], 0)
            if (problem := first.attempts[0].unreachable) is not None:
                raise CommandError(f"no answer from the bridge: {problem}", "nothing was delivered")
            if first.attempts[0].error == REFUSED:
                print(
                    f"idaas-bridge simulate: {self.target.url}: connection refused (is the bridge running?); "
                    "counting the failures as IDaaS would",
                    file=sys.stderr,
                )
            progress.advance(task)
            started = time.monotonic()

            async def scheduled(number: int, event_type: str) -> Delivery:
                await self.pause(started + (number - 1) / self.rate - time.monotonic())
                delivery = await self.deliver(event_type, number)
                progress.advance(task)
                return delivery

            rest = await asyncio.gather(
                *(scheduled(number, name) for number, name in enumerate(types[1:], 1))
            )
        finally:
            await self.client.aclose()
        return [first, *rest]


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summarize(
    deliveries: list[Delivery], model: AutoDisableModel, webhook: str, seconds: float
) -> dict[str, Any]:
    """The run as IDaaS would have seen it; the streak and the webhook's state come from the model."""
    sent = [delivery for delivery in deliveries if delivery.sent]
    attempts = [attempt for delivery in sent for attempt in delivery.attempts]
    answered_ms = [attempt.elapsed * 1000 for attempt in attempts if attempt.status is not None]
    p50, p99 = percentile(answered_ms, 0.50), percentile(answered_ms, 0.99)
    return {
        "events": len(deliveries),
        "sent": len(sent),
        "accepted": sum(delivery.accepted for delivery in sent),
        "accepted_first_try": sum(delivery.attempts[0].succeeded for delivery in sent),
        "retried": sum(len(delivery.attempts) > 1 for delivery in sent),
        "failed": sum(not delivery.accepted for delivery in sent),
        "not_delivered": len(deliveries) - len(sent),
        "attempts": len(attempts),
        "statuses": dict(sorted(Counter(str(a.status) for a in attempts if a.status is not None).items())),
        "errors": dict(Counter(a.error for a in attempts if a.error is not None)),
        "p50_ms": None if p50 is None else round(p50, 1),
        "p99_ms": None if p99 is None else round(p99, 1),
        "webhook": webhook,
        "webhook_state": "enabled" if model.enabled else "disabled",
        "auto_disable": model.auto_disable,
        "disable_after": model.disable_after,
        "streak": model.streak,
        "max_consecutive_failures": model.longest,
        "would_auto_disable": model.reached,
        "seconds": round(seconds, 2),
    }


def failure_causes(summary: dict[str, Any]) -> str:
    """What the failed attempts got, e.g. "HTTP 401: 100" or "connection refused: 12"."""
    answers = [
        f"HTTP {status}: {n}" for status, n in summary["statuses"].items() if not status.startswith("2")
    ]
    return (
        ", ".join(answers + [f"{error}: {n}" for error, n in summary["errors"].items()]) or "answers too slow"
    )


def disabled_message(summary: dict[str, Any]) -> str:
    """What IDaaS would have done and what the operator must do about it."""
    threshold = summary["disable_after"]
    modelled = (
        f"; threshold set by --disable-after, IDaaS's is {DISABLE_AFTER}"
        if threshold != DISABLE_AFTER
        else ""
    )
    what = (
        f"IDaaS would have disabled webhook {summary['webhook']!r} after {threshold} consecutive failed "
        f"deliveries ({failure_causes(summary)}{modelled})"
    )
    if summary["auto_disable"]:
        lost = (
            f"; the {summary['not_delivered']} event(s) after that were not delivered (webhook disabled), "
            "and IDaaS never sends them later"
        )
    else:
        lost = "; --no-auto-disable kept delivering, a real webhook would have received nothing more"
    return (
        f"{what}{lost}. To recover: fix the cause, re-enable the webhook in the IDaaS admin portal "
        "(Resources > Webhooks) or let the bridge do it (admin_api.reenable, docs/operations.md), then "
        "backfill what IDaaS never sent: idaas-bridge backfill --from <when the failures began> "
        "--to <when it was re-enabled>."
    )


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="IDaaS delivery simulation", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    verdict = "[red]yes[/red]" if summary["would_auto_disable"] else "[green]no[/green]"
    state = summary["webhook_state"]
    rows = [
        ("events", summary["events"]),
        ("deliveries sent", summary["sent"]),
        ("2xx on the first try", summary["accepted_first_try"]),
        ("accepted in the end", summary["accepted"]),
        ("retried (after a 5xx)", summary["retried"]),
        ("failed (every attempt)", summary["failed"]),
        ("not delivered: webhook disabled", summary["not_delivered"]),
        ("answers by status", ", ".join(f"{k}: {v}" for k, v in summary["statuses"].items()) or "-"),
        ("no answer", ", ".join(f"{k}: {v}" for k, v in summary["errors"].items()) or "-"),
        (
            "p50 / p99 answer time",
            "-" if summary["p50_ms"] is None else f"{summary['p50_ms']} / {summary['p99_ms']} ms",
        ),
        (
            "failure streak: now / longest",
            f"{summary['streak']} / {summary['max_consecutive_failures']} (limit {summary['disable_after']})",
        ),
        ("would auto-disable", verdict),
        (f"webhook {summary['webhook']}", f"[red]{state}[/red]" if state == "disabled" else state),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def simulate(settings: Settings, args: argparse.Namespace) -> int:
    known = [sample["type"] for sample in sample_deliveries()]
    unknown = sorted(set(args.type) - set(known))
    if unknown:
        print(
            f"idaas-bridge simulate: unknown --type {', '.join(unknown)}; choose from {', '.join(known)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    types = [name for name in known if not args.type or name in args.type]
    count = args.count if args.count is not None else len(types)
    destination = target(settings, args.webhook, args.url)
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=args.cafile)
    model = AutoDisableModel(disable_after=args.disable_after, auto_disable=args.auto_disable)
    progress = progress_bar("delivering")
    started = time.monotonic()
    with progress:
        deliveries = asyncio.run(
            Simulator(destination, verify, args.rate, model).run(plan(types, count, args.seed), progress)
        )
    summary = summarize(deliveries, model, destination.webhook, time.monotonic() - started)
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        Console().print(summary_table(summary))
    if model.reached:
        print(f"idaas-bridge simulate: {disabled_message(summary)}", file=sys.stderr)
        return EXIT_WEBHOOK_DISABLED
    return EXIT_FAILED if summary["failed"] else EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="where to POST (default: this config's server, /webhooks/<webhook>); e.g. the public URL",
    )
    parser.add_argument("--webhook", help="configured webhook whose token signs (default: the first one)")
    parser.add_argument("--cafile", help="CA bundle (or self-signed certificate) to verify the bridge's TLS")
    parser.add_argument(
        "--type", action="append", default=[], metavar="TYPE", help="only this event type (repeatable)"
    )
    parser.add_argument("--count", type=positive(int), help="deliveries to send (default: one per type)")
    parser.add_argument(
        "--rate", type=positive(float), default=10.0, help="new deliveries per second (default 10)"
    )
    parser.add_argument("--seed", type=int, help="seed of the event-type mix, for a repeatable run")
    parser.add_argument(
        "--disable-after",
        type=positive(int),
        default=DISABLE_AFTER,
        metavar="N",
        help=f"failed deliveries in a row that disable the webhook (IDaaS: {DISABLE_AFTER}; less for a demo)",
    )
    parser.add_argument(
        "--no-auto-disable",
        dest="auto_disable",
        action="store_false",
        help="keep delivering after the webhook would have been disabled (the verdict and exit code stay)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")


COMMAND = Command(
    description=(
        "Deliver signed sample events of the 16 IDaaS types (each type once, then a realistic mix) the way "
        f"IDaaS does: {IDAAS_DEADLINE_SECONDS:g} s per attempt, a retry only after a 5xx (after "
        f"{' and '.join(f'~{delay:g} s' for delay in IDAAS_RETRY_DELAYS_SECONDS)}), and after "
        f"{DISABLE_AFTER} consecutive failed deliveries the webhook disabled: nothing more is sent (exit "
        f"{EXIT_WEBHOOK_DISABLED}; exit {EXIT_FAILED} when a delivery failed without that)."
    ),
    add_arguments=add_arguments,
    run=simulate,
)
