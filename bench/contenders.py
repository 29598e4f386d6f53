"""What is benchmarked: how to start each contender, when it is ready, what to send it, where it writes.

Every contender gets its own fresh topics on the same local broker, so "records found in Kafka" counts only
its own writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal

import httpx
import yaml

from bench import as_filed, toolchain
from bench.deliveries import Request, otlp_deliveries, signed_deliveries
from bench.hostile import SinglePortBridge
from bridge.config import KafkaSettings
from bridge.cpus import cpu_limit
from tests.e2e.harness import BRIDGE, BridgeProcess
from tests.kafka_broker import create_topics
from tests.ports import free_port

TOKEN: Final = "bench-token-0123456789"
READY_TIMEOUT_SECONDS: Final = 60.0


@dataclass(frozen=True)
class Launch:
    """A contender ready to be started: its command line, where it listens and what it writes to."""

    argv: list[str]
    env: dict[str, str]
    base_url: str
    path: str
    topics: list[str]
    make_requests: Callable[[str, int], list[Request]]
    probe: Callable[[httpx.Client], bool]

    @property
    def url(self) -> str:
        return self.base_url + self.path


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    #: Requests per second to pre-build for, before the first run measures the real figure.
    expected_rate: int
    prepare: Callable[[Path, str], Launch]
    writes_kafka: bool = True


@dataclass
class Running:
    launch: Launch
    process: subprocess.Popen[bytes]
    ready_seconds: float
    log: Path
    measured_rates: list[float] = field(default_factory=list)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(contender: Contender, workdir: Path, bootstrap: str) -> Running:
    """Start the contender and wait until its readiness probe passes; the wait is its start-to-ready time."""
    workdir.mkdir(parents=True, exist_ok=True)
    launch = contender.prepare(workdir, bootstrap)
    log = workdir / "server.log"
    with log.open("ab") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            launch.argv, stdout=out, stderr=subprocess.STDOUT, env=launch.env, cwd=workdir
        )
    deadline = started + READY_TIMEOUT_SECONDS
    with httpx.Client(base_url=launch.base_url, verify=False, timeout=2.0) as client:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{contender.label} exited with {process.returncode}; see {log}")
            try:
                if launch.probe(client):
                    return Running(launch, process, time.perf_counter() - started, log)
            except httpx.TransportError:
                pass
            time.sleep(0.01)
    process.kill()
    raise RuntimeError(f"{contender.label} was not ready within {READY_TIMEOUT_SECONDS} s; see {log}")


def _webhook_post_ok(client: httpx.Client) -> bool:
    return client.post("/webhooks/prod", content=b"{}").status_code == 200


def _ceiling_requests(url: str, count: int) -> list[Request]:
    return signed_deliveries(url, TOKEN, count)  # the ceilings ignore the signature headers


def _python_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("IDAAS_BRIDGE_")}


def ceiling_http() -> Contender:
    def prepare(workdir: Path, bootstrap: str) -> Launch:
        port = free_port()
        return Launch(
            [sys.executable, "-m", "bench.ceilings", "http", "--port", str(port)],
            _python_env() | {"PYTHONPATH": str(toolchain.ROOT)},
            f"http://127.0.0.1:{port}",
            "/webhooks/prod",
            [],
            _ceiling_requests,
            _webhook_post_ok,
        )

    return Contender(
        "ceiling-http", "ceiling: bare Starlette/uvicorn 200", 15_000, prepare, writes_kafka=False
    )


def _kafka_ceiling(kind: str, key: str, label: str) -> Contender:
    def prepare(workdir: Path, bootstrap: str) -> Launch:
        port = free_port()
        topic = f"bench.{uuid.uuid4().hex[:8]}.ceiling"
        create_topics(bootstrap, [topic])
        argv = [sys.executable, "-m", "bench.ceilings", kind, "--port", str(port)]
        return Launch(
            [*argv, "--bootstrap", bootstrap, "--topic", topic],
            _python_env() | {"PYTHONPATH": str(toolchain.ROOT)},
            f"http://127.0.0.1:{port}",
            "/webhooks/prod",
            [topic],
            _ceiling_requests,
            _webhook_post_ok,
        )

    return Contender(key, label, 10_000, prepare)


def ceiling_kafka() -> Contender:
    return _kafka_ceiling("kafka", "ceiling-kafka", "ceiling: Starlette → confluent-kafka")


def ceiling_protocol_kafka() -> Contender:
    return _kafka_ceiling(
        "protocol-kafka", "ceiling-protocol-kafka", "ceiling: the bridge's HTTP protocol → confluent-kafka"
    )


def otel_peer() -> Contender:
    """The OpenTelemetry Collector: OTLP/HTTP in, kafka exporter out, answering only after the broker's
    acknowledgement (no sending queue, acks=all, no retries), lz4 and 5 ms linger like the bridge. Built
    (`go build`, cached) when it is about to run, not for a run that leaves it out (BENCH_ONLY)."""

    def prepare(workdir: Path, bootstrap: str) -> Launch:
        port = free_port()
        topic = f"bench.{uuid.uuid4().hex[:8]}.peer"
        create_topics(bootstrap, [topic])
        config = {
            "extensions": {"bearertokenauth": {"token": TOKEN}},
            "receivers": {
                "otlp": {
                    "protocols": {
                        "http": {
                            "endpoint": f"127.0.0.1:{port}",
                            "auth": {"authenticator": "bearertokenauth"},
                        }
                    }
                }
            },
            "exporters": {
                "kafka": {
                    "brokers": [bootstrap],
                    "logs": {"topic": topic, "encoding": "raw"},
                    "producer": {"required_acks": -1, "compression": "lz4", "linger": "5ms"},
                    "sending_queue": {"enabled": False},
                    "retry_on_failure": {"enabled": False},
                }
            },
            "service": {
                "extensions": ["bearertokenauth"],
                "pipelines": {"logs": {"receivers": ["otlp"], "exporters": ["kafka"]}},
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
            },
        }
        config_path = workdir / "otelcol.yaml"
        config_path.write_text(yaml.safe_dump(config))

        def probe(client: httpx.Client) -> bool:
            answer = client.post(
                "/v1/logs",
                content=b"{}",
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
            )
            return answer.status_code == 200

        return Launch(
            [str(toolchain.peer()), "--config", str(config_path)],
            dict(os.environ),
            f"http://127.0.0.1:{port}",
            "/v1/logs",
            [topic],
            lambda url, count: otlp_deliveries(url, TOKEN, count),
            probe,
        )

    return Contender("peer", "OpenTelemetry Collector 0.165", 15_000, prepare)


def bridge(
    ack_mode: str, tls: bool, workers: int | Literal["auto"] = 1, source: Path | None = None
) -> Contender:
    """The bridge of this checkout, or with `source` the bridge package of another one (a baseline);
    `workers` is its server.workers (auto: one per core)."""
    scheme = "https" if tls else "http"

    def prepare(workdir: Path, bootstrap: str) -> Launch:
        overrides: dict[str, object] = {
            "spool.ack_mode": ack_mode,
            "kafka.statistics_interval_seconds": KafkaSettings.statistics_interval_seconds,
        }
        if workers != 1:
            overrides["server.workers"] = workers
        kind = BridgeProcess
        if source is not None and not (source / "bridge" / "servers.py").exists():
            kind = SinglePortBridge
        process = kind(
            workdir=workdir,
            bootstrap=bootstrap,
            topic_prefix=f"bench.{uuid.uuid4().hex[:8]}.",
            tls=tls,
            tokens={"prod": TOKEN},
            overrides=overrides,
        )
        create_topics(bootstrap, list(process.topics.values()))
        config_path = workdir / "bridge.yaml"
        config_path.write_text(yaml.safe_dump(process.config()))
        environment = process.environment()
        if source is not None:  # the daemon imports `bridge` from there: PYTHONPATH wins over the install
            environment["PYTHONPATH"] = str(source.resolve())
        return Launch(
            [str(BRIDGE), "serve", "--config", str(config_path)],
            environment,
            process.base_url,
            "/webhooks/prod",
            list(process.topics.values()),
            lambda url, count: signed_deliveries(url, TOKEN, count),
            lambda client: client.get(f"{process.ops_url}/readyz").status_code == 200,
        )

    count = cpu_limit() if workers == "auto" else workers
    suffix = {1: "", "auto": ", one worker per core"}.get(workers, f", {workers} workers")
    key = f"bridge-{ack_mode.replace('_', '-')}-{scheme}" + {1: "", "auto": "-auto"}.get(
        workers, f"-w{workers}"
    )
    label = f"bridge {ack_mode}, {scheme.upper()}{suffix}"
    if source is not None:
        key, label = f"{key}-baseline", f"{label} (baseline: {source.name})"
    return Contender(key, label, 10_000 * count, prepare)


#: The key of the bridge as issue 10 found it (bench/as_filed.py); ratios and targets are read against it.
AS_FILED_KEY: Final = "bridge-as-filed"


def bridge_as_filed(source: Path) -> Contender:
    """The bridge of `as_filed.COMMIT` (extracted into `source`) as the issue measured it: kafka_first, one
    worker, HTTP, its defaults."""
    contender = bridge("kafka_first", tls=False, source=source)
    label = f"bridge kafka_first, HTTP, as issue 10 found it ({as_filed.SHORT})"
    return replace(contender, key=AS_FILED_KEY, label=label)


def all_contenders(baseline: Path | None, filed: Path | None = None) -> list[Contender]:
    """Every contender; with `baseline`, another checkout's bridge (kafka_first, one worker, HTTP and
    HTTPS) runs just before this one's, for a before/after in the same run; with `filed`, the bridge as
    issue 10 found it (`bridge_as_filed`) runs before both."""
    return [
        ceiling_http(),
        ceiling_kafka(),
        ceiling_protocol_kafka(),
        otel_peer(),
        *([bridge_as_filed(filed)] if filed is not None else []),
        *([bridge("kafka_first", tls=False, source=baseline)] if baseline is not None else []),
        bridge("kafka_first", tls=False),
        bridge("kafka_first", tls=False, workers="auto"),
        *([bridge("kafka_first", tls=True, source=baseline)] if baseline is not None else []),
        bridge("kafka_first", tls=True),
        bridge("kafka_first", tls=True, workers="auto"),
        bridge("spool_first", tls=False),
        bridge("spool_first", tls=False, workers="auto"),
    ]
