"""Run the bridge's container image the way users and the Helm chart do, with podman.

`ContainerBridge` is a `BridgeProcess` whose daemon is the image's entrypoint in a container: read-only root
filesystem with a tmpfs /tmp, the spool on a named volume, the chart's user and capabilities, the config
file mounted read-only, tokens in the environment, and the host's network (the test broker listens on
127.0.0.1). The host's ports are shared with whatever else runs here, so the container listens on a free
port set in its config, like the daemon the harness starts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from tests.e2e.harness import ROOT, BridgeProcess

PODMAN: Final = ROOT / "deploy/image/podman.sh"
BUILD: Final = ROOT / "deploy/image/build.sh"
CHART_VALUES: Final = ROOT / "helm/idaas-siem-bridge/values.yaml"
#: Where the image expects its config and spool (deploy/Dockerfile).
CONFIG_PATH: Final = "/etc/idaas-bridge/bridge.yaml"
SPOOL_PATH: Final = "/var/lib/idaas-bridge/spool"


def podman(*args: str, check: bool = True, timeout: float = 120.0, **kwargs: Any) -> str:
    """Run deploy/image/podman.sh; its stdout, or an AssertionError with its stderr."""
    result = subprocess.run(
        [str(PODMAN), *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result.stdout


def podman_unavailable() -> str | None:
    """Why podman cannot run containers here, or None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed (make image installs it with apt-get)"
    result = subprocess.run([str(PODMAN), "info"], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        return f"podman cannot run here: {result.stderr.strip().splitlines()[-1:]}"
    return None


@dataclass(frozen=True)
class ChartRuntime:
    """What the Helm chart's defaults fix about the container: its user and the time a stop may take."""

    user: str
    stop_timeout: int
    shutdown_grace_seconds: int

    @classmethod
    def from_values(cls) -> ChartRuntime:
        values = yaml.safe_load(CHART_VALUES.read_text(encoding="utf-8"))
        pod = values["podSecurityContext"]
        return cls(
            user=f"{pod['runAsUser']}:{pod['runAsGroup']}",
            # Kubernetes sends SIGTERM after the preStop sleep and SIGKILL at the end of the grace period.
            stop_timeout=values["terminationGracePeriodSeconds"] - values["preStopSleepSeconds"],
            shutdown_grace_seconds=values["config"]["server"]["shutdown_grace_seconds"],
        )


@dataclass
class ContainerBridge(BridgeProcess):
    """The image's bridge in a podman container; `volume` is the named volume mounted as the spool."""

    image: str = ""
    volume: str = ""
    runtime: ChartRuntime = field(default_factory=ChartRuntime.from_values)
    name: str = field(default_factory=lambda: f"idaas-bridge-test-{uuid.uuid4().hex[:10]}")
    exit_code: int | None = None

    def config(self) -> dict[str, Any]:
        document = super().config()
        document["spool"]["path"] = SPOOL_PATH
        document["server"]["shutdown_grace_seconds"] = self.runtime.shutdown_grace_seconds
        return document

    def start(self, timeout: float = 60.0) -> None:
        config_path = self.write_config()
        config_path.chmod(0o644)
        environment = self.environment()
        # `-e NAME` without a value: podman takes it from its environment; no token is on a command line.
        health = ["--health-cmd", json.dumps(self.health_command())]
        tokens = [arg for name in environment if name.startswith("IDAAS_BRIDGE_") for arg in ("-e", name)]
        podman(
            "run", "--detach", "--name", self.name,
            "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp",
            "--user", self.runtime.user, "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--network", "host",
            "--volume", f"{config_path}:{CONFIG_PATH}:ro", "--volume", f"{self.volume}:{SPOOL_PATH}",
            *health, *tokens, self.image,
            env=environment,
        )  # fmt: skip
        self.wait_until_healthy(timeout)

    def exited(self) -> str | None:
        running = podman("inspect", "--format", "{{.State.Running}}", self.name).strip() == "true"
        return None if running else "the container exited"

    def health_command(self) -> list[str]:
        """The image's HEALTHCHECK command, asking this container's operations port instead of the image's
        default (host networking: the image's port may be taken here, and parallel test runs must not
        collide)."""
        test = json.loads(
            podman("image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}", self.image)
        )
        assert test[0] == "CMD", f"HEALTHCHECK is not in exec form: {test}"
        return [re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{self.ops_port}", part) for part in test[1:]]

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a command in the running container, as its user."""
        return subprocess.run(
            [str(PODMAN), "exec", self.name, *argv], capture_output=True, text=True, timeout=60, check=False
        )

    def log_tail(self, lines: int = 40) -> str:
        result = subprocess.run(
            [str(PODMAN), "logs", "--tail", str(lines), self.name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result.stdout + result.stderr

    def log_records(self) -> list[dict[str, Any]]:
        """The bridge's JSON log lines."""
        lines = podman("logs", self.name).splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self, timeout: float | None = None) -> int:
        """`podman stop`: SIGTERM, then SIGKILL after the chart's grace period; the exit code."""
        if self.exit_code is None:
            grace = self.runtime.stop_timeout if timeout is None else timeout
            podman("stop", "--time", str(int(grace)), self.name, timeout=grace + 60)
            self.exit_code = int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name))
        return self.exit_code

    def remove(self) -> None:
        podman("rm", "--force", "--volumes", "--time", "0", self.name)


def spool_directory(volume: str) -> Path:
    """The host directory behind a named podman volume."""
    return Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).strip())
