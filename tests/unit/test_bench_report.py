"""The rows of docs/benchmarks.md's results table (bench/report.py): which sender made an open-loop point."""

from __future__ import annotations

from bench.report import Run, table


def _run(client: str, load: int, max_connections: int | None = None) -> Run:
    return Run(
        contender="bridge-kafka-first-https",
        label="bridge kafka_first, HTTPS",
        client=client,
        load=load,
        throughput=5000.0,
        p50_ms=1.0,
        p99_ms=5.0,
        p999_ms=9.0,
        max_ms=12.0,
        answered=50_000,
        non2xx=0,
        kafka_records=50_000,
        cpu_us_per_delivery=150.0,
        peak_rss_mb=60.0,
        ready_seconds=0.4,
        exhausted=False,
        max_connections=max_connections,
    )


def test_a_pooled_open_loop_row_names_its_connection_limit_and_the_others_do_not() -> None:
    rows = table([_run("wrk", 128), _run("vegeta", 5000), _run("vegeta", 5000, 64)]).splitlines()[2:]
    assert [row.split(" | ")[1] for row in rows] == ["128 conn", "5,000/s open", "5,000/s open, ≤64 conn"]
