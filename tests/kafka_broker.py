"""Drive a local Kafka broker from tests: start, stop, crash (SIGKILL), hang (SIGSTOP), resume.

deploy/kafka/kafka.sh stays the only implementation, so `make kafka-up`, CI and the tests run the same broker
with the same configuration; this module only adds readiness checks through a real Kafka client.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bridge.config import KafkaSettings
from bridge.publish.kafka import topic_limit_bytes

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


def _port_from_env(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


@dataclass(frozen=True)
class LocalKafka:
    """One broker instance, with its config, data and log in .cache/kafka/instance-<name>.

    Tests that stop, kill or pause a broker give it their own name and ports, so the shared broker stays up.
    The default ports follow kafka.sh's KAFKA_PORT / KAFKA_CONTROLLER_PORT, so a machine whose 9092 is taken
    (say by a second checkout's broker) moves the shared broker for make and pytest alike.
    """

    name: str = "default"
    port: int = field(default_factory=lambda: _port_from_env("KAFKA_PORT", 9092))
    controller_port: int = field(default_factory=lambda: _port_from_env("KAFKA_CONTROLLER_PORT", 9093))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def instance_dir(self) -> Path:
        return ROOT / ".cache" / "kafka" / f"instance-{self.name}"

    def running(self) -> bool:
        """Whether the broker process exists (a paused broker counts: it still holds its ports)."""
        return self._run("status").returncode == 0

    def start(self, timeout: float = 90.0) -> None:
        """Start (a no-op when already running) and return once a client gets metadata."""
        self._checked("up")
        self.wait_ready(timeout)

    def stop(self) -> None:
        """Clean shutdown: SIGTERM, so the broker flushes and closes its logs."""
        self._checked("down")

    def kill(self) -> None:
        """Crash: SIGKILL, so nothing is flushed; the next start runs log recovery."""
        self._checked("kill")

    def pause(self) -> None:
        """Hang: SIGSTOP; connections stay open but nothing answers, unlike a stopped broker."""
        self._checked("pause")

    def resume(self) -> None:
        self._checked("resume")

    def wipe(self) -> None:
        """Stop and delete config, data and log, so the next start formats fresh storage."""
        self._checked("wipe")

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for_broker(self.bootstrap, timeout)

    def _run(self, command: str) -> subprocess.CompletedProcess[str]:
        env = os.environ | {
            "KAFKA_INSTANCE_DIR": str(self.instance_dir),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
        }
        return subprocess.run([str(SCRIPT), command], env=env, capture_output=True, text=True, check=False)

    def _checked(self, command: str) -> None:
        result = self._run(command)
        if result.returncode != 0:
            raise RuntimeError(f"kafka.sh {command} failed:\n{result.stdout}{result.stderr}")


def wait_for_broker(bootstrap: str, timeout: float = 60.0) -> None:
    """Return once the broker answers a metadata request: the log line alone does not prove clients get in."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no Kafka broker answered at {bootstrap} within {timeout} s") from exc


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 3, timeout: float = 30.0) -> None:
    """Create topics and wait until every partition has a leader, so the first produce does not race them.

    Auto-creation is off on the local broker, as in production. Topics that already exist are accepted, so
    a rerun against a long-lived broker works.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = list(dict.fromkeys(names))
    # As `idaas-bridge topics` creates them: room for the largest record the bridge may produce.
    config = {"max.message.bytes": str(topic_limit_bytes(KafkaSettings()))}
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config) for name in wanted],
        operation_timeout=timeout,
    )
    for future in futures.values():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    deadline = time.monotonic() + timeout
    while pending := _without_leaders(admin, wanted):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topics {pending} have no partition leaders after {timeout} s")
        time.sleep(0.1)


def _without_leaders(admin: AdminClient, names: list[str]) -> list[str]:
    """The topics among `names` that metadata does not show yet, or with a partition that has no leader."""
    topics = admin.list_topics(timeout=5).topics
    return [
        name
        for name in names
        if name not in topics
        or topics[name].error is not None
        or not topics[name].partitions
        or any(partition.leader < 0 for partition in topics[name].partitions.values())
    ]
