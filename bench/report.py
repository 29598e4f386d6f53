"""Turn the runs into the Markdown tables of docs/benchmarks.md and the PNG of throughput and p99."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final


@dataclass(frozen=True)
class Run:
    contender: str
    label: str
    client: str  # "wrk" (closed loop, load = connections) or "vegeta" (open loop, load = deliveries/s)
    load: int
    throughput: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    answered: int
    non2xx: int
    kafka_records: int | None
    cpu_us_per_delivery: float
    peak_rss_mb: float
    ready_seconds: float
    exhausted: bool
    #: vegeta only: the sender reused at most this many connections (None: it dialled whenever none was idle).
    max_connections: int | None = None


def _load(run: Run) -> str:
    if run.client == "wrk":
        return f"{run.load} conn"
    pool = "" if run.max_connections is None else f", ≤{run.max_connections} conn"
    return f"{run.load:,}/s open{pool}"


def _kafka(run: Run) -> str:
    if run.kafka_records is None:
        return "-"
    delivered = run.answered - run.non2xx
    return f"{run.kafka_records:,}" + ("" if run.kafka_records >= delivered else " **< 2xx**")


def table(runs: Sequence[Run]) -> str:
    lines = [
        "| contender | load | req/s | p50 ms | p99 ms | p999 ms | max ms | 2xx | non-2xx | in Kafka "
        "| CPU µs/delivery | peak RSS MB | ready s |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.label} | {_load(run)}{' (ran out of requests)' if run.exhausted else ''} "
            f"| {run.throughput:,.0f} | {run.p50_ms:.1f} | {run.p99_ms:.1f} | {run.p999_ms:.1f} "
            f"| {run.max_ms:.0f} | {run.answered - run.non2xx:,} | {run.non2xx:,} | {_kafka(run)} "
            f"| {run.cpu_us_per_delivery:.0f} | {run.peak_rss_mb:.0f} | {run.ready_seconds:.2f} |"
        )
    return "\n".join(lines)


def ratios(runs: Sequence[Run], connections: int, references: Sequence[str]) -> str:
    """Each contender's throughput and CPU per delivery at `connections`, relative to the references."""
    at = {run.contender: run for run in runs if run.client == "wrk" and run.load == connections}
    present = [key for key in references if key in at]
    header = " | ".join(f"req/s ÷ {key} | CPU ÷ {key}" for key in present)
    lines = [f"| contender ({connections} connections) | {header} |", "|---|" + "--:|--:|" * len(present)]
    for run in at.values():
        cells = " | ".join(
            f"{run.throughput / at[key].throughput:.2f}x | "
            f"{run.cpu_us_per_delivery / at[key].cpu_us_per_delivery:.1f}x"
            for key in present
        )
        lines.append(f"| {run.label} | {cells} |")
    return "\n".join(lines)


#: The contenders issue 10's targets are read on (keys in bench/contenders.py).
BRIDGE: Final = "bridge-kafka-first-http"
BRIDGE_PER_CORE: Final = "bridge-kafka-first-http-auto"
PEER: Final = "peer"
#: The two bridges the open-loop targets are read on, as the targets' table names them.
_BRIDGES: Final = ((BRIDGE, "one worker"), (BRIDGE_PER_CORE, "one per core"))


@dataclass(frozen=True)
class Target:
    """One of issue 10's targets as one run measured it; `met` is None where the run lacks a figure."""

    name: str
    asked: str
    measured: str
    met: bool | None


def _points(runs: Sequence[Run], contender: str, client: str, load: int | None = None) -> list[Run]:
    return [
        run
        for run in runs
        if run.contender == contender and run.client == client and load in (None, run.load)
    ]


def _cpu(runs: Sequence[Run], filed: str, share: float) -> Target:
    name, asked = "CPU per delivery, one worker, 128 conn", f"≤ {share:.2f}x the bridge as issue 10 found it"
    mine, old = _points(runs, BRIDGE, "wrk", 128), _points(runs, filed, "wrk", 128)
    if not mine:
        return Target(name, asked, "-", None)
    spent = mine[0].cpu_us_per_delivery
    if not old:
        return Target(name, asked, f"{spent:.0f} µs (the bridge as issue 10 found it did not run)", None)
    then = old[0].cpu_us_per_delivery
    return Target(
        name, asked, f"{spent:.0f} µs, {spent / then:.2f}x its {then:.0f} µs", spent / then <= share
    )


def _saturation(runs: Sequence[Run], workers: int) -> Target:
    """The highest closed-loop throughput of one worker per core against the peer's."""
    name, asked = f"saturation, one worker per core ({workers})", "≥ 0.50x the peer's req/s"
    mine, peer = _points(runs, BRIDGE_PER_CORE, "wrk"), _points(runs, PEER, "wrk")
    if not mine or not peer:
        return Target(name, asked, "-", None)
    best, reference = (max(points, key=lambda run: run.throughput) for points in (mine, peer))
    share = best.throughput / reference.throughput
    measured = (
        f"{best.throughput:,.0f} req/s at {_load(best)}, {share:.2f}x the peer's "
        f"{reference.throughput:,.0f} at {_load(reference)}"
    )
    return Target(name, asked, measured, share >= 0.5)


def _open_loop(runs: Sequence[Run], rate: int, p50_ms: float | None, p99_ms: float) -> Target:
    """Every open-loop point at `rate` (either sender) all 2xx, within the percentiles and under 1 s at
    most; met when one of the two bridges meets it at each of its points. The peer's figures are shown
    beside them: on a slow machine they tell what the machine allows."""
    limits = f"p50 ≤ {p50_ms:g} ms, " if p50_ms is not None else ""
    asked = f"every answer 2xx, {limits}p99 ≤ {p99_ms:g} ms, max < 1 s"
    lines, verdicts = [], []
    for key, name in (*_BRIDGES, (PEER, "the peer")):
        points = _points(runs, key, "vegeta", rate)
        if not points:
            continue
        figures = "; ".join(
            f"{'≤' + str(run.max_connections) + ' conn: ' if run.max_connections else ''}"
            f"{run.p50_ms:.1f} / {run.p99_ms:.1f} / {run.max_ms:,.0f} ms, {run.non2xx:,} non-2xx"
            for run in points
        )
        lines.append(f"{name}: {figures}")
        if key != PEER:
            verdicts.append(
                all(
                    run.non2xx == 0
                    and (p50_ms is None or run.p50_ms <= p50_ms)
                    and run.p99_ms <= p99_ms
                    and run.max_ms < 1000
                    for run in points
                )
            )
    name = f"{rate:,} deliveries/s, open loop (p50 / p99 / max)"
    return Target(name, asked, "<br>".join(lines) or "-", any(verdicts) if verdicts else None)


def _highest(runs: Sequence[Run], filed: str, figure: Callable[[Run], float]) -> tuple[float, str] | None:
    """The highest `figure` over every point of this checkout's bridges (not the one as the issue found it,
    not a baseline), with the label of the bridge it came from."""
    mine = [
        run
        for run in runs
        if run.contender.startswith("bridge-")
        and run.contender != filed
        and not run.contender.endswith("-baseline")
    ]
    if not mine:
        return None
    worst = max(mine, key=figure)
    return figure(worst), worst.label


def _highest_target(
    runs: Sequence[Run], filed: str, name: str, limit: float, unit: str, figure: Callable[[Run], float]
) -> Target:
    """`name`: the highest `figure` over every point of this checkout's bridges, at most `limit` `unit`."""
    highest = _highest(runs, filed, figure)
    asked = f"≤ {limit:g} {unit}"
    if highest is None:
        return Target(name, asked, "-", None)
    value, label = highest
    shown = f"{value:.2f}" if unit == "s" else f"{value:.0f}"
    return Target(name, asked, f"at most {shown} {unit} ({label})", value <= limit)


def _rss(runs: Sequence[Run], workers: int, filed: str) -> Target:
    """Peak RSS of a bridge's process tree over its workers (the serving parent's share included)."""
    return _highest_target(
        runs,
        filed,
        "peak RSS per worker, every bridge",
        100,
        "MB",
        lambda run: run.peak_rss_mb / (workers if run.contender.endswith("-auto") else 1),
    )


def _ready(runs: Sequence[Run], filed: str) -> Target:
    return _highest_target(
        runs, filed, "start to ready, Kafka up, every bridge", 1, "s", lambda run: run.ready_seconds
    )


def _in_kafka(runs: Sequence[Run]) -> Target:
    counted = [run for run in runs if run.kafka_records is not None]
    short = [run for run in counted if (run.kafka_records or 0) < run.answered - run.non2xx]
    measured = f"{len(counted) - len(short)} of {len(counted)} points" + "".join(
        f"; fewer at {run.label}, {_load(run)}" for run in short
    )
    return Target(
        "every 2xx in Kafka", "every contender, every point", measured, not short if counted else None
    )


def targets(runs: Sequence[Run], workers: int, filed: str, cpu_share: float) -> list[Target]:
    """Issue 10's targets read on one run. `filed` is the key of the bridge as the issue found it: the CPU
    target is a share (`cpu_share`) of its CPU in the same run, because the issue's µs were measured on
    another machine (bench/as_filed.py). `workers`: the per-core bridges' worker count."""
    return [
        _cpu(runs, filed, cpu_share),
        _saturation(runs, workers),
        _open_loop(runs, 1000, 2.0, 5.0),
        _open_loop(runs, 5000, None, 25.0),
        _rss(runs, workers, filed),
        _ready(runs, filed),
        _in_kafka(runs),
    ]


def targets_table(found: Sequence[Target]) -> str:
    lines = ["| issue 10's target | asked | this run | met |", "|---|---|---|---|"]
    verdict = {True: "yes", False: "**no**", None: "not measured"}
    lines.extend(f"| {t.name} | {t.asked} | {t.measured} | {verdict[t.met]} |" for t in found)
    return "\n".join(lines)


def plot(runs: Sequence[Run], path: Path, title: str) -> None:
    # Imported here: matplotlib is the bench extra (`make bench` installs it), and the tables above are
    # used, and unit-tested, where only the daemon's dependencies are (`make test`).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    closed = [run for run in runs if run.client == "wrk"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for contender in dict.fromkeys(run.contender for run in closed):
        points = sorted((run for run in closed if run.contender == contender), key=lambda run: run.load)
        loads = [run.load for run in points]
        label = points[0].label
        left.plot(loads, [run.throughput for run in points], marker="o", label=label)
        right.plot(loads, [run.p99_ms for run in points], marker="o", label=label)
    connections = sorted({run.load for run in closed})
    for axes, ylabel in ((left, "deliveries answered per second"), (right, "p99 latency (ms)")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(connections, labels=[str(count) for count in connections])
        axes.set_xlabel("keep-alive connections (wrk, closed loop)")
        axes.set_ylabel(ylabel)
        axes.grid(True, which="both", alpha=0.3)
    right.set_yscale("log")
    if closed:  # a partial run of open-loop points only has no line to name
        left.legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
