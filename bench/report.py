"""Turn the runs into the Markdown tables of docs/benchmarks.md and the PNG of throughput and p99."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


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
