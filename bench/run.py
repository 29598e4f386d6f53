"""Benchmark: per-request CPU cost of each pipeline stage, and end-to-end throughput and latency of the
daemon against the real local broker. Results are ratios and figures from one run on this machine; they
go to docs/benchmarks.md by hand, never into a test.

    make bench            (starts the local Kafka if needed)
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bridge import auth
from bridge.events.envelope import parse_envelope
from bridge.events.normalize import normalize
from bridge.events.samples import sample_deliveries
from bridge.formats import FORMATS
from tests.e2e.harness import BridgeProcess
from tests.e2e.load import run_load
from tests.kafka_broker import LocalKafka, create_topics

URL = "https://bridge.example/webhooks/prod"
TOKEN = "bench-token-0123456789"


def per_call_microseconds(action: Callable[[], object], repeat: int = 20_000) -> float:
    for _ in range(1000):
        action()
    started = time.perf_counter()
    for _ in range(repeat):
        action()
    return (time.perf_counter() - started) / repeat * 1e6


def stage_costs() -> dict[str, float]:
    sample = sample_deliveries()[2]
    body = orjson.dumps(sample)
    headers = auth.sign(TOKEN, "POST", URL, body, int(time.time()))
    request = auth.SignedRequest(
        method="POST",
        target_uri=URL,
        body=body,
        content_digest=headers["content-digest"],
        signature_input=headers["signature-input"],
        signature=headers["signature"],
    )
    envelope = parse_envelope(body)
    event = normalize(envelope, "prod", datetime.now(UTC))
    costs = {
        "verify signature (RFC 9421 + digest)": per_call_microseconds(
            lambda: auth.verify(request, [TOKEN], time.time(), 300)
        ),
        "parse envelope": per_call_microseconds(lambda: parse_envelope(body)),
        "normalize": per_call_microseconds(lambda: normalize(envelope, "prod", datetime.now(UTC))),
    }
    for name, event_format in sorted(FORMATS.items()):
        costs[f"encode {name}"] = per_call_microseconds(lambda f=event_format: f.encode(event))  # type: ignore[misc]
    return costs


def end_to_end(tls: bool, ack_mode: str, total: int, workers: int) -> dict[str, float]:
    broker = LocalKafka()
    broker.start()
    with tempfile.TemporaryDirectory() as workdir:
        bridge = BridgeProcess(
            workdir=Path(workdir),
            bootstrap=broker.bootstrap,
            topic_prefix=f"bench{time.time_ns()}.",
            tls=tls,
            tokens={"prod": TOKEN},
            overrides={"spool.ack_mode": ack_mode},
        )
        create_topics(broker.bootstrap, list(bridge.topics.values()))
        bridge.start()
        try:
            started = time.perf_counter()
            cafile = str(Path(workdir) / "tls" / "dev-cert.pem") if tls else None
            load = asyncio.run(run_load(bridge.base_url, TOKEN, total=total, workers=workers, cafile=cafile))
            elapsed = time.perf_counter() - started
        finally:
            bridge.stop()
    latencies = sorted(a.seconds for a in load.answers)
    return {
        "requests": len(load.answers),
        "2xx": len(load.accepted),
        "req_per_s": len(load.answers) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def main() -> None:
    costs = stage_costs()
    total = sum(costs.values())
    print("Per-request CPU cost by stage (µs, one core):")
    for stage, micros in costs.items():
        print(f"  {stage:<40} {micros:8.1f} µs  ({micros / total:5.1%} of the stages)")
    print("\nEnd to end (load generator, bridge and broker share this machine's cores):")
    runs = {
        "http, kafka_first": end_to_end(False, "kafka_first", 20000, 32),
        "https, kafka_first": end_to_end(True, "kafka_first", 20000, 32),
        "http, spool_first": end_to_end(False, "spool_first", 20000, 32),
    }
    base = runs["http, kafka_first"]["req_per_s"]
    for name, figures in runs.items():
        print(
            f"  {name:<20} {figures['req_per_s']:7.0f} req/s ({figures['req_per_s'] / base:4.2f}x)  "
            f"p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms  "
            f"max {figures['max_ms']:6.1f} ms  2xx {figures['2xx']:.0f}/{figures['requests']:.0f}"
        )


if __name__ == "__main__":
    main()
