"""The entry point: versions, exit codes per kind of failure, one line instead of a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import confluent_kafka
import pytest

from bridge.cli import EXIT_CONFIG, EXIT_RUNTIME, EXIT_USAGE, main
from bridge.cli.main import COMMANDS

BRIDGE = Path(sys.executable).parent / "idaas-bridge"
TOKEN = "cli-test-token-0123456789"


def test_version_names_the_bridge_python_and_kafka_client_versions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("idaas-bridge 0.")
    assert f"librdkafka {confluent_kafka.libversion()[0]}" in out
    assert "confluent-kafka 2." in out and "Python 3." in out


@pytest.mark.parametrize("command", [None, *(command.name for command in COMMANDS)])
def test_every_command_has_help(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"] if command else ["--help"]) == 0
    assert "exit codes:" in capsys.readouterr().out


def test_usage_and_configuration_errors_have_distinct_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["no-such-command"]) == EXIT_USAGE
    assert main(["topics", "--partitions", "many"]) == EXIT_USAGE
    capsys.readouterr()
    assert main(["check-config", "--config", str(tmp_path / "absent.yaml")]) == EXIT_CONFIG
    assert "configuration error: config file" in capsys.readouterr().err
    assert len({EXIT_USAGE, EXIT_CONFIG, EXIT_RUNTIME}) == 3


def test_unreachable_kafka_is_one_line_with_the_fix_and_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text("webhooks: [{name: dev}]\nkafka: {bootstrap_servers: '127.0.0.1:1'}\n")
    env = {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": TOKEN, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [str(BRIDGE), "topics", "--config", str(config)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == EXIT_RUNTIME
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("idaas-bridge topics: Kafka at 127.0.0.1:1:")
    assert "check kafka.bootstrap_servers" in line


def test_simulate_with_nothing_listening_is_one_line_and_a_runtime_failure(tmp_path: Path) -> None:
    from tests.e2e.harness import free_port

    config = tmp_path / "bridge.yaml"
    config.write_text("webhooks: [{name: dev}]\n")
    url = f"http://127.0.0.1:{free_port()}/webhooks/dev"
    env = {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": TOKEN, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [str(BRIDGE), "simulate", "--url", url, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == EXIT_RUNTIME
    (line,) = result.stderr.strip().splitlines()
    assert "connection refused" in line and url in line and "Traceback" not in result.stderr
