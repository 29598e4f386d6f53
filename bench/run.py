"""The side-by-side benchmark: the bridge against the OpenTelemetry Collector and the stack's two ceilings,
same client, same broker, same machine, one run.

    make bench                   the full run: wrk at 8/32/128/512 connections, vegeta at 1,000 and
                                 5,000 deliveries/s, and at 5,000/s reusing at most 64 connections, 10 s
                                 each; rewrites the results in docs/benchmarks.md and docs/benchmarks.png
    BENCH_QUICK=1 make bench     128 connections and 1,000/s only, 3 s each; results in .cache/bench/
    BENCH_ONLY=peer,bridge-kafka-first-http make bench    only these contenders (keys in contenders.py)
    BENCH_SECONDS=5 make bench   another duration per point
    BENCH_CONNECTIONS= BENCH_RATES=5000 make bench    only these points: wrk connection counts and vegeta
                                      rates, comma-separated (empty: none of that client)
    BENCH_POOLED_RATES=5000 make bench   the open-loop rates of the sender reusing at most
                                      plan.POOL_CONNECTIONS connections (empty: none)
    DEV_CERT_KEY=rsa make bench  the HTTPS contenders with an RSA-2048 certificate (default ECDSA P-256)
    BENCH_BASELINE=DIR make bench     also the bridge package of checkout DIR (kafka_first, one worker,
                                      HTTP and HTTPS), each run just before this checkout's: a
                                      before/after under the same conditions

Every run that does not leave it out (BENCH_ONLY) also measures the bridge as issue 10 found it
(bench/as_filed.py, key bridge-as-filed), extracted from this clone's history into .cache/bench/: the
issue's CPU target is read as a share of its CPU in the same run, and the results end with a table of
the issue's targets as the run measured them.

Only a full run of every contender at the full points and duration rewrites the docs; quick and partial
runs (BENCH_ONLY or any of plan.POINTS set) write to .cache/bench/.

Figures are never asserted anywhere: a shared or small machine moves them, see docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import orjson

from bench import as_filed, contenders, processes, report, stages, toolchain
from bench.clients import ClientResult, run_vegeta, run_wrk
from bench.kafka_count import RecordCounter
from bench.plan import BenchSettingError, Plan, plan_from
from bridge.cpus import cpu_limit
from tests.kafka_broker import LocalKafka

DOCS: Final = toolchain.ROOT / "docs" / "benchmarks.md"
PLOT: Final = toolchain.ROOT / "docs" / "benchmarks.png"
WORK: Final = toolchain.ROOT / ".cache" / "bench"
BEGIN: Final = "<!-- bench-results:begin (written by make bench) -->"
END: Final = "<!-- bench-results:end -->"
#: Pre-build this many times the requests the highest rate measured so far needs, so wrk does not run out.
#: The next point has 4x the connections: the peer went from 15,079 req/s at 32 connections to more than
#: 24,127 at 128 in the run of 2026-12-01 03:11 UTC and ran out of 1.6x.
REQUEST_MARGIN: Final = 2.5
MAX_PREBUILT: Final = 400_000
#: Pause between runs so one run's tail (drain, GC, the broker's flush) does not land in the next.
PAUSE_SECONDS: Final = 1.0


def local_kafka() -> LocalKafka:
    """The broker `make kafka-up` runs (kafka.sh's default instance on KAFKA_PORT or 9092), started if
    need be."""
    broker = LocalKafka(
        "default",
        int(os.environ.get("KAFKA_PORT", "9092")),
        int(os.environ.get("KAFKA_CONTROLLER_PORT", "9093")),
    )
    broker.start()
    return broker


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    load = Path("/proc/loadavg").read_text().split()[:3]
    return (
        f"{os.cpu_count()} x {model}, {memory_kib / 2**20:.0f} GiB, Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average at start {' '.join(load)}"
    )


def measure(
    contender: contenders.Contender,
    running: contenders.Running,
    counter: RecordCounter,
    client: str,
    load: int,
    drive: Callable[[], ClientResult],
    max_connections: int | None = None,
) -> report.Run:
    launch = running.launch
    records_before = counter.count(launch.topics) if contender.writes_kafka else 0
    cpu_before = processes.cpu_seconds(running.process.pid)
    result = drive()
    delivered = result.answered - result.non2xx
    records = None
    if contender.writes_kafka:
        records = counter.settle(launch.topics, records_before + delivered) - records_before
    cpu = processes.cpu_seconds(running.process.pid) - cpu_before
    deliveries = max(1, records if records is not None else delivered)
    running.measured_rates.append(result.throughput)
    return report.Run(
        contender=contender.key,
        label=contender.label,
        client=client,
        load=load,
        throughput=result.throughput,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        p999_ms=result.p999_ms,
        max_ms=result.max_ms,
        answered=result.answered,
        non2xx=result.non2xx,
        kafka_records=records,
        cpu_us_per_delivery=cpu / deliveries * 1e6,
        peak_rss_mb=processes.peak_rss_bytes(running.process.pid) / 2**20,
        ready_seconds=running.ready_seconds,
        exhausted=result.exhausted,
        max_connections=max_connections,
    )


def bench_contender(
    contender: contenders.Contender, plan: Plan, bootstrap: str, counter: RecordCounter
) -> list[report.Run]:
    wrk, vegeta = toolchain.wrk(), toolchain.vegeta()
    workdir = WORK / "run" / contender.key
    shutil.rmtree(workdir, ignore_errors=True)
    running = contenders.start(contender, workdir, bootstrap)
    launch = running.launch
    print(f"{contender.label}: ready in {running.ready_seconds:.2f} s", flush=True)
    runs = []
    try:
        for connections in plan.connections:
            rate = max([contender.expected_rate, *running.measured_rates])
            count = min(MAX_PREBUILT, int(rate * plan.seconds * REQUEST_MARGIN) + connections)
            requests = launch.make_requests(launch.url, count)
            runs.append(
                measure(
                    contender,
                    running,
                    counter,
                    "wrk",
                    connections,
                    lambda: run_wrk(wrk, launch.base_url, requests, connections, plan.seconds, workdir),  # noqa: B023
                )
            )
            print(f"  {report.table(runs[-1:]).splitlines()[-1]}", flush=True)
            time.sleep(PAUSE_SECONDS)
        for rate, pool in plan.open_loop():
            requests = launch.make_requests(launch.url, int(rate * plan.seconds))
            runs.append(
                measure(
                    contender,
                    running,
                    counter,
                    "vegeta",
                    rate,
                    lambda: run_vegeta(vegeta, requests, rate, plan.seconds, workdir, pool),  # noqa: B023
                    pool,
                )
            )
            print(f"  {report.table(runs[-1:]).splitlines()[-1]}", flush=True)
            time.sleep(PAUSE_SECONDS)
    finally:
        running.stop()
    return runs


def write_docs(text: str) -> None:
    document = DOCS.read_text()
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOCS.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main() -> None:
    only = {key for key in os.environ.get("BENCH_ONLY", "").split(",") if key}
    quick = os.environ.get("BENCH_QUICK") == "1"
    try:
        plan, partial = plan_from(os.environ)
    except BenchSettingError as exc:
        raise SystemExit(f"make bench: {exc}") from None
    baseline = Path(os.environ["BENCH_BASELINE"]) if os.environ.get("BENCH_BASELINE") else None
    filed = as_filed.checkout(WORK) if not only or contenders.AS_FILED_KEY in only else None
    selected = [c for c in contenders.all_contenders(baseline, filed) if not only or c.key in only]
    broker = local_kafka()
    counter = RecordCounter(broker.bootstrap)
    started = datetime.now(UTC)
    about = machine()
    print(about, flush=True)
    runs: list[report.Run] = []
    try:
        for contender in selected:
            runs.extend(bench_contender(contender, plan, broker.bootstrap, counter))
            time.sleep(PAUSE_SECONDS)
    finally:
        counter.close()
    kafka_version = subprocess.run(
        ["sed", "-n", "s:.*<kafka.version>\\(.*\\)</kafka.version>.*:\\1:p", "deploy/kafka/pom.xml"],
        cwd=toolchain.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    mode = "quick" if quick else "full" if not partial else "partial"
    results = "\n\n".join(
        [
            f"Run {started:%Y-%m-%d %H:%M} UTC ({mode}, {plan.seconds:g} s per point): {about}; "
            f"Kafka {kafka_version} single node on loopback.",
            report.table(runs),
            report.ratios(
                runs,
                128,
                ["peer", "ceiling-http", "ceiling-kafka", "ceiling-protocol-kafka", contenders.AS_FILED_KEY],
            ),
            "Pure-Python stage costs (one core, no I/O):\n\n" + stages.report(),
            "Issue 10's targets on this run (the CPU target as a share of the bridge as the issue found it, "
            "bench/as_filed.py):\n\n"
            + report.targets_table(
                report.targets(runs, cpu_limit(), contenders.AS_FILED_KEY, as_filed.CPU_TARGET_SHARE)
            ),
        ]
    )
    out = WORK if partial else toolchain.ROOT / "docs"
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"results-{started:%Y%m%dT%H%M%S}.json").write_bytes(
        orjson.dumps([dataclasses.asdict(run) for run in runs], option=orjson.OPT_INDENT_2)
    )
    report.plot(
        runs,
        out / "benchmarks.png",
        f"{mode} run {started:%Y-%m-%d}, {os.cpu_count()} cores shared by client, server and Kafka",
    )
    if partial:
        (WORK / "results.md").write_text(results + "\n")
        print(f"\n{results}\n\n({mode} run: {WORK / 'results.md'}, {WORK / 'benchmarks.png'})")
    else:
        write_docs(results)
        print(f"\n{results}\n\n(written to {DOCS} and {PLOT})")


if __name__ == "__main__":
    main()
