"""`idaas-bridge simulate`: deliver signed sample events exactly as IDaaS does, to rehearse before
pointing IDaaS at the bridge.

IDaaS's rules (bridge/config.py, bridge/guard.py): each attempt must be answered 2xx within
IDAAS_DEADLINE_SECONDS; only a 5xx is retried, after IDAAS_RETRY_DELAYS_SECONDS with jitter; a delivery
whose attempts all failed is one failure; DISABLE_AFTER consecutive failed deliveries disable the webhook.
The summary says whether this run would have.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import ssl
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from bridge.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, from_os_error
from bridge.config import (
    IDAAS_DEADLINE_SECONDS,
    IDAAS_RETRY_DELAYS_SECONDS,
    IDAAS_RETRY_JITTER_SECONDS,
    ConfigError,
    Settings,
)
from bridge.events.samples import sample_deliveries
from bridge.guard import DISABLE_AFTER, idaas_retries, idaas_success

#: A tenant's usual traffic: mostly sign-ins, some user administration, few authenticator changes.
#: Types not listed weigh 1.
MIX_WEIGHTS: Final = {
    "authentication.succeeded": 60,
    "authentication.failed": 15,
    "user.updated": 4,
    "user.created": 2,
    "password.updated": 2,
}


@dataclass(frozen=True, slots=True)
class Attempt:
    #: The HTTP status, or None when no answer came (timeout, connection error).
    status: int | None
    elapsed: float
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and idaas_success(self.status, self.elapsed)


@dataclass
class Delivery:
    type: str
    attempts: list[Attempt] = field(default_factory=list)
    finished: float = 0.0

    @property
    def accepted(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].succeeded


@dataclass(frozen=True)
class Target:
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
    return Target(url, signed, hook.tokens[0])


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
    def __init__(self, target: Target, verify: ssl.SSLContext | bool, rate: float) -> None:
        self.target = target
        self.rate = rate
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
            return Attempt(None, time.perf_counter() - started, "timeout")
        except httpx.TransportError as exc:
            cause = _os_error(exc)
            text = str(from_os_error(cause, self.target.url)) if cause is not None else str(exc)
            return Attempt(None, time.perf_counter() - started, text)
        return Attempt(answer.status_code, time.perf_counter() - started)

    async def deliver(self, event_type: str, number: int) -> Delivery:
        """One delivery: up to 1 + len(IDAAS_RETRY_DELAYS_SECONDS) attempts, the same id each time."""
        body = orjson.dumps({**self.samples[event_type], "id": f"sim-{time.time_ns()}-{number}"})
        delivery = Delivery(event_type)
        for delay in (0.0, *IDAAS_RETRY_DELAYS_SECONDS):
            if delay:
                await asyncio.sleep(delay + self.jitter.uniform(0, IDAAS_RETRY_JITTER_SECONDS))
            attempt = await self.attempt(body)
            delivery.attempts.append(attempt)
            if attempt.status is None or not idaas_retries(attempt.status):
                break
        delivery.finished = time.monotonic()
        return delivery

    async def run(self, types: list[str], progress: Progress) -> list[Delivery]:
        task = progress.add_task("", total=len(types))
        try:
            # The first delivery alone: when nothing answers at all, say so instead of counting failures.
            first = await self.deliver(types[0], 0)
            if first.attempts[0].status is None and first.attempts[0].error != "timeout":
                raise CommandError(
                    f"no answer from the bridge: {first.attempts[0].error}", "nothing was delivered"
                )
            progress.advance(task)
            started = time.monotonic()

            async def scheduled(number: int, event_type: str) -> Delivery:
                await asyncio.sleep(max(0.0, started + (number - 1) / self.rate - time.monotonic()))
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


def summarize(deliveries: list[Delivery], seconds: float) -> dict[str, Any]:
    """The run as IDaaS would have seen it. The failure streak counts deliveries in the order they ended."""
    streak = longest = 0
    for delivery in sorted(deliveries, key=lambda item: item.finished):
        streak = 0 if delivery.accepted else streak + 1
        longest = max(longest, streak)
    attempts = [attempt for delivery in deliveries for attempt in delivery.attempts]
    answered_ms = [attempt.elapsed * 1000 for attempt in attempts if attempt.status is not None]
    p50, p99 = percentile(answered_ms, 0.50), percentile(answered_ms, 0.99)
    return {
        "sent": len(deliveries),
        "accepted": sum(delivery.accepted for delivery in deliveries),
        "accepted_first_try": sum(delivery.attempts[0].succeeded for delivery in deliveries),
        "retried": sum(len(delivery.attempts) > 1 for delivery in deliveries),
        "failed": sum(not delivery.accepted for delivery in deliveries),
        "attempts": len(attempts),
        "statuses": dict(sorted(Counter(str(a.status) for a in attempts if a.status is not None).items())),
        "errors": dict(Counter(a.error for a in attempts if a.error is not None)),
        "p50_ms": None if p50 is None else round(p50, 1),
        "p99_ms": None if p99 is None else round(p99, 1),
        "max_consecutive_failures": longest,
        "would_auto_disable": longest >= DISABLE_AFTER,
        "seconds": round(seconds, 2),
    }


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="IDaaS delivery simulation", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    verdict = "[red]yes[/red]" if summary["would_auto_disable"] else "[green]no[/green]"
    rows = [
        ("deliveries sent", summary["sent"]),
        ("2xx on the first try", summary["accepted_first_try"]),
        ("accepted in the end", summary["accepted"]),
        ("retried (after a 5xx)", summary["retried"]),
        ("failed (every attempt)", summary["failed"]),
        ("answers by status", ", ".join(f"{k}: {v}" for k, v in summary["statuses"].items()) or "-"),
        ("no answer", ", ".join(f"{k}: {v}" for k, v in summary["errors"].items()) or "-"),
        ("p50 / p99 answer time", f"{summary['p50_ms']} / {summary['p99_ms']} ms"),
        (
            "longest failure streak",
            f"{summary['max_consecutive_failures']} (IDaaS disables at {DISABLE_AFTER})",
        ),
        ("would auto-disable", verdict),
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
    progress = progress_bar("delivering")
    started = time.monotonic()
    with progress:
        deliveries = asyncio.run(
            Simulator(destination, verify, args.rate).run(plan(types, count, args.seed), progress)
        )
    summary = summarize(deliveries, time.monotonic() - started)
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        Console().print(summary_table(summary))
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
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")


COMMAND = Command(
    name="simulate",
    summary="deliver signed sample events as IDaaS does (timeouts, retries, auto-disable verdict)",
    description=(
        "Deliver signed sample events of the 16 IDaaS types (each type once, then a realistic mix) the way "
        f"IDaaS does: {IDAAS_DEADLINE_SECONDS:g} s per attempt, a retry only after a 5xx (after "
        f"{' and '.join(f'~{delay:g} s' for delay in IDAAS_RETRY_DELAYS_SECONDS)}), and a verdict on whether "
        f"{DISABLE_AFTER} consecutive failed deliveries would have disabled the webhook (exit 1 when any "
        "delivery failed)."
    ),
    add_arguments=add_arguments,
    run=simulate,
)
