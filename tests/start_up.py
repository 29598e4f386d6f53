"""Run `idaas-bridge` with a configuration it must refuse before serving anything, and check how it does:
exit code 3, one line per process that got that far (with workers, each worker says it once), no
traceback, no worker started again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bridge.cli.exits import EXIT_CONFIG
from tests.ports import BRIDGE_PORTS, free_ports

BRIDGE = Path(sys.executable).parent / "idaas-bridge"
TOKEN = "start-up-test-token-0123456789"


def refusal(
    tmp_path: Path,
    arguments: list[str],
    workers: int = 1,
    kafka: str = "{bootstrap_servers: '127.0.0.1:1'}",
    spool: Path | None = None,
    program: list[str] | None = None,
    environment: dict[str, str] | None = None,
) -> str:
    """The one line `program arguments --config <a config with kafka, spool.path and server.workers>`
    (default program: the installed idaas-bridge; `environment` added to its own) refuses it with."""
    port, ops_port = free_ports(2, BRIDGE_PORTS)
    config = tmp_path / "bridge.yaml"
    config.write_text(
        f"webhooks: [{{name: dev}}]\nkafka: {kafka}\n"
        f"server: {{host: 127.0.0.1, port: {port}, ops_host: 127.0.0.1, ops_port: {ops_port}, "
        f"workers: {workers}}}\nspool: {{path: '{spool or tmp_path / 'spool'}'}}\n"
    )
    env = {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": TOKEN, "PATH": "/usr/bin:/bin", **(environment or {})}
    result = subprocess.run(
        [*(program or [str(BRIDGE)]), *arguments, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "starting it again" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= workers and set(lines) == {lines[0]}, lines
    return lines[0]
