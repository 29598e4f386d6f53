"""The make targets that talk to the local broker follow KAFKA_PORT (config/bridge.yaml names 9092)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def recipe(target: str, *variables: str) -> str:
    """The commands `make <target>` would run (make -n: nothing runs), one per line."""
    environment = {name: value for name, value in os.environ.items() if name != "KAFKA_PORT"}
    result = subprocess.run(
        ["make", "-n", "-B", target, *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    return result.stdout.replace("\\\n", " ")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target", ["run", "topics", "tail"])
def test_the_bridge_talks_to_the_broker_on_kafka_port(target: str) -> None:
    commands = recipe(target, "KAFKA_PORT=19692")
    bridge = [line for line in commands.splitlines() if "/idaas-bridge " in line]
    assert bridge, commands
    assert all("IDAAS_BRIDGE_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:19692" in line for line in bridge), bridge


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_default_port_is_the_broker_kafka_sh_starts() -> None:
    assert "IDAAS_BRIDGE_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 " in recipe("tail")
