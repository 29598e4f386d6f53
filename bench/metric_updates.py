"""CPU cost of the bridge's Prometheus updates, in one process with no I/O: each kind of update alone, and
the set one published delivery makes (bridge/receiver.py, guard.py, dedup.py, publish/kafka.py), as the
call sites make them.

    python -m bench.metric_updates            # one process (server.workers = 1)
    python -m bench.metric_updates --workers  # worker mode (server.workers above 1): per-process files

Each figure is the minimum over `--repeat` runs (the least disturbed by other load on the machine).
"""

from __future__ import annotations

import argparse
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

from bridge import metrics

#: Inside the fine buckets, as a delivery's request and publish durations are.
SECONDS = 0.0021


def update_costs(number: int, repeat: int) -> dict[str, float]:
    """ns per call of each update kind, and µs for one published delivery's updates."""
    counter = metrics.DELIVERIES.labels(webhook="prod", event_type="user.authentication", status="published")
    histogram = metrics.REQUEST_DURATION.labels(webhook="prod")
    gauge = metrics.DEDUP_ENTRIES
    recent = metrics.LAST_SUCCESS.labels(webhook="prod")
    delivered = metrics.KAFKA_MESSAGES.labels(topic="t", result="delivered")
    duration = metrics.PUBLISH_DURATION.labels(topic="t")

    def delivery() -> None:
        """A published authentication event, 2xx: the receiver's look-ups, then the cached children."""
        metrics.DELIVERIES.labels(webhook="prod", event_type="user.authentication", status="published").inc()
        metrics.AUTHENTICATIONS.labels(outcome="success", resource="User Portal").inc()
        metrics.REQUEST_DURATION.labels(webhook="prod").observe(SECONDS)
        metrics.RESPONSES.labels(webhook="prod", code="200").inc()
        recent.set(1.7e9)
        gauge.set(1000)
        delivered.inc()
        duration.observe(SECONDS)

    actions: dict[str, tuple[Callable[[], object], float]] = {
        "counter inc (ns)": (counter.inc, 1e9),
        "histogram observe (ns)": (lambda: histogram.observe(SECONDS), 1e9),
        "gauge set (ns)": (lambda: gauge.set(1000), 1e9),
        "max gauge set (ns)": (lambda: recent.set(1.7e9), 1e9),
        "one delivery's updates (µs)": (delivery, 1e6),
    }
    return {
        name: min(timeit.repeat(action, number=number, repeat=repeat)) / number * scale
        for name, (action, scale) in actions.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", action="store_true", help="worker mode: per-process metric files")
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        if args.workers:
            metrics.use_worker_files(Path(directory))
        for name, value in update_costs(args.number, args.repeat).items():
            print(f"{name:32} {value:8.3f}")


if __name__ == "__main__":
    main()
