"""Drive a local Kafka broker from tests: start, stop, crash (SIGKILL), hang (SIGSTOP), resume.

deploy/kafka/kafka.sh stays the only implementation, so `make kafka-up`, CI and the tests run the same broker
with the same configuration; this module only adds readiness checks through a real Kafka client.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bridge.config import KafkaSettings
from bridge.publish import topics as bridge_topics
from tests.ports import free_ports

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"
#: Attempts at starting a private broker: another session may take the ports between the check and the bind.
START_ATTEMPTS = 3


@dataclass(frozen=True)
class LocalKafka:
    """One broker instance, with its config, data and log in .cache/kafka/instance-<name>.

    The test session's broker is private (`private("pytest")`, on free ports), so `make test` runs beside
    `make run`'s broker on 9092; `for_session()` says when an existing one is shared instead. Tests that
    stop, kill or pause a broker take a private instance of their own, so the session's broker stays up.
    """

    name: str
    port: int
    controller_port: int
    #: Free ports were chosen for it: when another process takes them first, `started()` moves it.
    movable: bool = False
    #: Also a SASL_SSL listener on localhost:<port> (kafka.sh's KAFKA_SASL_PORT; users and CA there).
    sasl_port: int | None = None

    @classmethod
    def for_session(cls) -> LocalKafka:
        """The test session's broker.

        KAFKA_PORT (kafka.sh's own override, with KAFKA_CONTROLLER_PORT) is the opt-in to share: the
        project's default instance on those ports, the very broker `make kafka-up` starts with the same
        variables (reused when it runs; KAFKA_PORT=9092 tests against `make run`'s). Without it, a private
        instance on free ports.
        """
        if "KAFKA_PORT" in os.environ:
            return cls(
                "default",
                int(os.environ["KAFKA_PORT"]),
                int(os.environ.get("KAFKA_CONTROLLER_PORT", "9093")),
            )
        return cls.private("pytest")

    @classmethod
    def private(cls, name: str) -> LocalKafka:
        """Instance `name` on free ports; when it already runs (another session in this checkout), on the
        ports it runs on, so both sessions share it instead of failing."""
        listening = cls(name, 0, 0).listeners()
        if listening is not None:
            return cls(name, *listening)
        port, controller_port = free_ports(2)
        return cls(name, port, controller_port, movable=True)

    def started(self) -> LocalKafka:
        """Start (a no-op when already running) and return the running broker: this one, or for a movable
        instance whose ports another process took since they were chosen, the same instance on new ones."""
        broker = self
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                broker.start()
                return broker
            except RuntimeError:
                if not broker.movable or broker.running() or attempt == START_ATTEMPTS:
                    raise
                port, controller_port = free_ports(2)
                broker = LocalKafka(self.name, port, controller_port, movable=True)
        return broker

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_SSL listener, by the name its certificate holds."""
        return f"localhost:{self.sasl_port}"

    @property
    def sasl_ca(self) -> Path:
        return self.instance_dir / "tls" / "ca.pem"

    @property
    def instance_dir(self) -> Path:
        return ROOT / ".cache" / "kafka" / f"instance-{self.name}"

    def listeners(self) -> tuple[int, int] | None:
        """(client port, controller port) of this instance's running broker; None when it does not run."""
        if not self.running():
            return None
        ports: dict[str, int] = {}
        for line in (self.instance_dir / "server.properties").read_text().splitlines():
            if line.startswith("listeners="):
                for listener in line.removeprefix("listeners=").split(","):
                    name, _, address = listener.partition("://")
                    ports[name] = int(address.rpartition(":")[2])
        return ports["PLAINTEXT"], ports["CONTROLLER"]

    def running(self) -> bool:
        """Whether the broker process exists (a paused broker counts: it still holds its ports)."""
        return self._run("status").returncode == 0

    def start(self, timeout: float = 90.0, pass_fds: tuple[int, ...] = ()) -> None:
        """Start (a no-op when already running) and return once a client gets metadata; `pass_fds` are
        descriptors kafka.sh inherits, as from a caller such as `flock`."""
        self._checked("up", pass_fds)
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
        """SIGCONT, returning at once: a test may act before the broker has caught up (`start` waits)."""
        self._checked("resume")

    def wipe(self) -> None:
        """Stop and delete config, data and log, so the next start formats fresh storage."""
        self._checked("wipe")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once a client gets metadata and the controller answers an admin request.

        After a pause (SIGSTOP, SIGCONT) the first admin request a client sends can wait its whole timeout
        for the controller even though metadata is served (seen with Kafka 4.4 and librdkafka: "Failed while
        waiting for controller"); a fresh client gets an answer at once. Without this, the next test's
        topic creation hit that wait and failed after 30 s (CI, tests/e2e/test_lifecycle.py).
        """
        deadline = time.monotonic() + timeout
        wait_for_broker(self.bootstrap, timeout)
        wait_for_controller(self.bootstrap, max(0.1, deadline - time.monotonic()))

    def env(self) -> dict[str, str]:
        """The environment kafka.sh drives this instance with."""
        env = os.environ | {
            "KAFKA_INSTANCE_DIR": str(self.instance_dir),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
        }
        if self.sasl_port is not None:
            env["KAFKA_SASL_PORT"] = str(self.sasl_port)
        return env

    def _run(self, command: str, pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), command],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            pass_fds=pass_fds,
        )

    def _checked(self, command: str, pass_fds: tuple[int, ...] = ()) -> None:
        result = self._run(command, pass_fds)
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


#: How long one controller probe waits before a fresh client tries again.
CONTROLLER_PROBE_SECONDS = 3.0


def wait_for_controller(bootstrap: str, timeout: float) -> None:
    """Return once the controller answers a CreateTopics that validates only (it creates nothing), each
    attempt from a new admin client: a stuck one keeps waiting while a new one is answered."""
    deadline = time.monotonic() + timeout
    while True:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        wait = max(0.1, min(CONTROLLER_PROBE_SECONDS, deadline - time.monotonic()))
        probe = NewTopic("controller-probe", num_partitions=1, replication_factor=1)
        [future] = admin.create_topics(
            [probe], validate_only=True, operation_timeout=wait, request_timeout=wait
        ).values()
        try:
            future.result(timeout=wait + 1.0)
            return
        except (KafkaException, TimeoutError) as exc:
            if isinstance(exc, KafkaException) and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return  # answered: the controller is reachable
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the controller of the broker at {bootstrap} did not answer within {timeout:g} s: {exc}"
                ) from exc


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 3, timeout: float = 30.0) -> None:
    """Create topics as `idaas-bridge topics` does (room for the largest record), returning once every
    partition has a leader, so the first produce does not race them. Existing topics are accepted, so a
    rerun against a long-lived broker works. (Auto-creation is off on the local broker, as in production.)
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    bridge_topics.create_topics(
        admin, names, partitions, 1, bridge_topics.new_topic_config(KafkaSettings()), timeout
    )
