"""What `make bench` measures (bench/run.py): the points and duration the BENCH_* variables ask for, read
before anything starts so that a mistyped value is one line naming it, not a traceback minutes in."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Plan:
    connections: tuple[int, ...]
    #: Open-loop rates from a sender that dials whenever none of its connections is idle.
    rates: tuple[int, ...]
    #: Open-loop rates from a sender that reuses at most POOL_CONNECTIONS connections.
    pooled_rates: tuple[int, ...]
    seconds: float

    def open_loop(self) -> tuple[tuple[int, int | None], ...]:
        """Every open-loop point as (rate, the sender's connection limit or None), the unbounded first."""
        return tuple((rate, None) for rate in self.rates) + tuple(
            (rate, POOL_CONNECTIONS) for rate in self.pooled_rates
        )


#: The pooled sender's connections. IDaaS does not document its sender's pool. Go's and Java's HTTP clients
#: and Node's agent do not bound connections per host by default (the unbounded point); OkHttp runs 5
#: requests per host at once (64 in all) and Apache HttpClient 2-5 per route, which cannot carry 5,000/s
#: at the bridge's 1-3 ms per TLS answer (Little's law: 5,000/s x 2 ms is 10 requests in flight), so a
#: sender at that rate has raised them. 64 leaves the sender room for answers averaging up to 12.8 ms
#: before the bound alone holds it below 5,000/s, is OkHttp's overall limit, and is what the ninth round
#: measured.
POOL_CONNECTIONS: Final = 64


FULL: Final = Plan(connections=(8, 32, 128, 512), rates=(1000, 5000), pooled_rates=(5000,), seconds=10)
QUICK: Final = Plan(connections=(128,), rates=(1000,), pooled_rates=(), seconds=3)


#: The variables that change what is measured: with any of them set, the run is partial (.cache/bench/).
POINTS: Final = ("BENCH_CONNECTIONS", "BENCH_RATES", "BENCH_POOLED_RATES", "BENCH_SECONDS")


class BenchSettingError(Exception):
    """A BENCH_* variable that cannot be read; the message names it, its value and what to write."""


def _above_zero(variable: str, whole: str, text: str, kind: type[int] | type[float]) -> float:
    """`text` (all of `whole`, or one item of its list) as a number above 0, else the error that says so."""
    try:
        value = kind(text)
    except ValueError:
        value = 0
    if value <= 0:
        example = "whole numbers, comma-separated, e.g. 128,512" if kind is int else "seconds, e.g. 5"
        raise BenchSettingError(f"{variable}={whole!r}: {text!r} is not a number above 0; write {example}")
    return value


def _numbers(variable: str, environ: Mapping[str, str]) -> tuple[int, ...]:
    """A comma-separated list of whole numbers above 0; empty: none."""
    whole = environ[variable]
    texts = [text.strip() for text in whole.split(",") if text.strip()]
    return tuple(int(_above_zero(variable, whole, text, int)) for text in texts)


def plan_from(environ: Mapping[str, str]) -> tuple[Plan, bool]:
    """The plan the BENCH_* variables ask for, and whether it is partial. Only a full run of every
    contender at the full plan's points and duration replaces the published figures; anything else goes
    to .cache/bench/ (a BENCH_SECONDS alone measures other figures than the run of record's)."""
    quick = environ.get("BENCH_QUICK") == "1"
    plan = QUICK if quick else FULL
    if "BENCH_SECONDS" in environ:
        whole = environ["BENCH_SECONDS"]
        plan = dataclasses.replace(plan, seconds=_above_zero("BENCH_SECONDS", whole, whole.strip(), float))
    if "BENCH_CONNECTIONS" in environ:
        plan = dataclasses.replace(plan, connections=_numbers("BENCH_CONNECTIONS", environ))
    if "BENCH_RATES" in environ:
        plan = dataclasses.replace(plan, rates=_numbers("BENCH_RATES", environ))
    if "BENCH_POOLED_RATES" in environ:
        plan = dataclasses.replace(plan, pooled_rates=_numbers("BENCH_POOLED_RATES", environ))
    only = any(environ.get("BENCH_ONLY", "").split(","))
    partial = quick or only or any(variable in environ for variable in POINTS)
    return plan, partial
