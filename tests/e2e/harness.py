"""Run the bridge as a real process, the way users and the Dockerfile do: `idaas-bridge serve --config`."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from confluent_kafka import Consumer, Message

from bridge.config import ADMIN_API_SECRET_ENV, env_name
from tests.fake_admin_api import ServedFake
from tests.kafka_broker import create_topics
from tests.ports import free_port
from tests.signing import idaas_headers

ROOT = Path(__file__).resolve().parents[2]
BRIDGE = Path(sys.executable).parent / "idaas-bridge"
TOPIC_KEYS = ("authentication", "user", "authenticator", "unknown", "deadletter")


def dev_certificate(directory: Path) -> tuple[Path, Path]:
    subprocess.run([str(ROOT / "deploy/dev/dev-cert.sh"), str(directory)], check=True, capture_output=True)
    return directory / "dev-cert.pem", directory / "dev-key.pem"


def topic_names(prefix: str) -> dict[str, str]:
    return {key: f"{prefix}idaas.{key}" for key in TOPIC_KEYS}


@dataclass
class BridgeProcess:
    """One bridge daemon on a free loopback port, with its config file, log and Kafka topics."""

    workdir: Path
    bootstrap: str
    topic_prefix: str
    tokens: dict[str, str] = field(default_factory=lambda: {"prod": "prod-token-1-0123456789"})
    tls: bool = True
    formats: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Settings of individual webhooks beyond their name, e.g. {"old": {"legacy_sha2_signature": True}}.
    webhook_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: More environment variables for the daemon and its CLI, e.g. the Admin API secret.
    extra_environment: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    ops_port: int = field(default_factory=free_port)
    #: The program that runs `idaas-bridge <command>`: the installed script, or a wrapper around it.
    program: list[str] = field(default_factory=lambda: [str(BRIDGE)])
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """The operations listener (plain HTTP): /metrics, /readyz, /healthz."""
        return f"http://127.0.0.1:{self.ops_port}"

    def url(self, webhook: str = "prod") -> str:
        return f"{self.base_url}/webhooks/{webhook}"

    @property
    def topics(self) -> dict[str, str]:
        return topic_names(self.topic_prefix)

    @property
    def log_path(self) -> Path:
        return self.workdir / "bridge.log"

    def config(self) -> dict[str, Any]:
        server: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "ops_host": "127.0.0.1",
            "ops_port": self.ops_port,
            "shutdown_grace_seconds": 5,
        }
        if self.tls:
            cert, key = dev_certificate(self.workdir / "tls")
            server |= {"tls_cert_file": str(cert), "tls_key_file": str(key)}
        topics: dict[str, Any] = {
            key: {"name": name, **({"format": self.formats[key]} if key in self.formats else {})}
            for key, name in self.topics.items()
        }
        document: dict[str, Any] = {
            "server": server,
            "webhooks": [{"name": name, **self.webhook_settings.get(name, {})} for name in self.tokens],
            "kafka": {
                "bootstrap_servers": self.bootstrap,
                "topics": topics,
                "statistics_interval_seconds": 1,
            },
            "spool": {"path": str(self.workdir / "spool")},
            "logging": {"level": "INFO"},
        }
        for dotted, value in self.overrides.items():
            target = document
            *parents, leaf = dotted.split(".")
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = value
        return document

    def restarted_with(self, bootstrap: str) -> BridgeProcess:
        """The same bridge (workdir, spool, port) pointed at `bootstrap`; not started yet."""
        return BridgeProcess(
            workdir=self.workdir,
            bootstrap=bootstrap,
            topic_prefix=self.topic_prefix,
            tokens=self.tokens,
            tls=self.tls,
            formats=self.formats,
            webhook_settings=self.webhook_settings,
            port=self.port,
            ops_port=self.ops_port,
        )

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IDAAS_BRIDGE_")}
        for name, token in self.tokens.items():
            env[env_name(name)] = token
        return env | self.extra_environment

    def start(self, timeout: float = 30.0) -> None:
        config_path = self.write_config()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.program, "serve", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            cwd=self.workdir,
        )
        self.wait_until_healthy(timeout)

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config()))
        return self.config_path

    def exited(self) -> str | None:
        """How the daemon ended, or None while it runs."""
        assert self.process is not None
        code = self.process.poll()
        return None if code is None else f"bridge exited with {code}"

    def wait_until_healthy(self, timeout: float) -> None:
        """Return once /healthz answers 200; fail when the daemon ends or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        with self.ops_client() as client:
            while time.monotonic() < deadline:
                if (ended := self.exited()) is not None:
                    raise RuntimeError(f"{ended}:\n{self.log_tail()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.kill()  # a daemon that never became healthy must not outlive the test that started it
        raise RuntimeError(f"bridge did not become healthy in {timeout} s:\n{self.log_tail()}")

    @property
    def config_path(self) -> Path:
        return self.workdir / "bridge.yaml"

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run `idaas-bridge <args> --config <this bridge's config>` as an operator would, with its tokens."""
        if not self.config_path.exists():
            self.write_config()
        return subprocess.run(
            [str(BRIDGE), *args, "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            env=self.environment(),
            timeout=timeout,
            check=False,
        )

    def client(self, **kwargs: Any) -> httpx.Client:
        verify: Any = (
            ssl.create_default_context(cafile=str(self.workdir / "tls" / "dev-cert.pem"))
            if self.tls
            else False
        )
        return httpx.Client(base_url=self.base_url, verify=verify, timeout=10.0, **kwargs)

    def ops_client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.ops_url, timeout=10.0, **kwargs)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def metrics(self) -> str:
        with self.ops_client() as client:
            return client.get("/metrics").text

    def rss_bytes(self) -> int:
        """The daemon's resident memory now (Linux /proc)."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kib) * 1024


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format; 0 when the series does not exist."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def consume_all(
    bootstrap: str,
    topics: Iterable[str],
    expected: int,
    timeout: float = 30.0,
    done: Callable[[list[Message]], bool] | None = None,
) -> list[Message]:
    """Read topics from the beginning until `expected` messages arrived (and `done` holds), then 1 s more."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(list(topics))
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() > settle_until:
                break
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            messages.append(message)
            if len(messages) >= expected and settle_until is None and (done is None or done(messages)):
                settle_until = time.monotonic() + 1.0
    finally:
        consumer.close()
    return messages


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def signed_post(bridge: BridgeProcess, body: bytes, webhook: str = "prod") -> httpx.Response:
    """POST `body` signed with the webhook's token exactly as IDaaS signs."""
    with bridge.client() as client:
        headers = idaas_headers(bridge.tokens[webhook], bridge.url(webhook), body)
        return client.post(f"/webhooks/{webhook}", content=body, headers=headers)


def plain_bridge(
    tmp_path: Path, broker: str, prefix: str, bridge_bootstrap: str | None = None, **overrides: object
) -> BridgeProcess:
    """A plain-HTTP bridge with its topics on `broker`; `bridge_bootstrap` points the bridge elsewhere."""
    process = BridgeProcess(
        workdir=tmp_path / "plain",
        bootstrap=bridge_bootstrap or broker,
        topic_prefix=prefix,
        tls=False,
        overrides=overrides,
    )
    create_topics(broker, list(process.topics.values()))
    return process


def offline_bridge(tmp_path: Path, broker: str, prefix: str) -> BridgeProcess:
    """A plain-HTTP bridge with no reachable Kafka, in spool_first mode: every delivery waits in the spool
    until `restarted_with(broker)` drains it."""
    return plain_bridge(tmp_path, broker, prefix, "127.0.0.1:1", **{"spool.ack_mode": "spool_first"})


def wait_for_metric(
    bridge: BridgeProcess, name: str, value: float, timeout: float = 20.0, **labels: str
) -> None:
    deadline = time.monotonic() + timeout
    while metric_value(bridge.metrics(), name, **labels) != value:
        assert time.monotonic() < deadline, f"{name}{labels} never became {value}:\n{bridge.log_tail()}"
        time.sleep(0.2)


def watched_bridge(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, fake: ServedFake, **admin_settings: object
) -> BridgeProcess:
    """A daemon (not started) whose admin_api is the fake, its public URL its own loopback URL."""
    admin = fake.settings()
    bridge = BridgeProcess(
        workdir=tmp_path / "bridge",
        bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        extra_environment={ADMIN_API_SECRET_ENV: admin.shared_secret},
    )
    bridge.overrides = {
        "server.public_base_url": bridge.base_url,
        "admin_api": {
            "hostname": admin.hostname,
            "application_id": admin.application_id,
            "ca_file": admin.ca_file,
            "webhook_poll_seconds": 3600,
            **admin_settings,
        },
    }
    create_topics(kafka_bootstrap, list(bridge.topics.values()))
    return bridge
