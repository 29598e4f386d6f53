"""Drive the project's local Kafka (deploy/kafka/kafka.sh) from tests: start, stop, kill, pause, resume."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


@dataclass
class LocalKafka:
    """One broker instance; tests that stop or pause a broker get their own on other ports."""

    name: str = "default"
    port: int = 9092
    controller_port: int = 9093

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def instance_dir(self) -> Path:
        return ROOT / ".cache" / "kafka" / f"instance-{self.name}"

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
            raise RuntimeError(f"kafka.sh {command} failed:\n{result.stdout}\n{result.stderr}")

    def running(self) -> bool:
        return self._run("status").returncode == 0

    def start(self) -> None:
        self._checked("up")
        self.wait_ready()

    def stop(self) -> None:
        self._checked("down")

    def kill(self) -> None:
        self._checked("kill")

    def pause(self) -> None:
        self._checked("pause")

    def resume(self) -> None:
        self._checked("resume")

    def wipe(self) -> None:
        self._checked("wipe")

    def wait_ready(self, timeout: float = 60.0) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + timeout
        while True:
            try:
                admin.list_topics(timeout=2)
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 3) -> None:
    """Create topics (auto-creation is off, as in production) and wait until metadata shows them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = list(names)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in wanted]
    )
    for future in futures.values():
        future.result(timeout=30)
    deadline = time.monotonic() + 30
    while not set(wanted) <= set(admin.list_topics(timeout=5).topics):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {wanted} did not appear in metadata")
        time.sleep(0.1)
