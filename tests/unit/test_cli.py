"""The entry point: versions, exit codes per kind of failure, one line instead of a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import confluent_kafka
import pytest

from bridge.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_RUNTIME, EXIT_USAGE, EXIT_WEBHOOK_DISABLED, main
from bridge.cli.main import COMMANDS
from tests.start_up import refusal

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


def test_version_needs_no_package_metadata_of_the_kafka_client(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A vendored confluent-kafka (or a distribution's build) has no package metadata: the client's own
    answer names its version."""
    package_version = metadata.version

    def only_the_bridges(distribution_name: str) -> str:
        if distribution_name != "idaas-siem-bridge":
            raise metadata.PackageNotFoundError(distribution_name)
        return package_version(distribution_name)

    monkeypatch.setattr(metadata, "version", only_the_bridges)
    assert main(["--version"]) == 0
    assert f"confluent-kafka {confluent_kafka.version()}, librdkafka" in capsys.readouterr().out


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
    assert len({EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_RUNTIME, EXIT_WEBHOOK_DISABLED}) == 5


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


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    ("spool", "reason"), [("file", "a file, not a directory"), ("file/sub", "Not a directory")]
)
def test_a_spool_path_that_cannot_be_a_directory_stops_serve_with_one_line(
    tmp_path: Path, workers: int, spool: str, reason: str
) -> None:
    """It failed only when the lifespan first wrote there: uvicorn logged a FileExistsError's traceback."""
    (tmp_path / "file").write_text("not a directory")
    assert refusal(tmp_path, ["serve"], workers, spool=tmp_path / spool) == (
        f"idaas-bridge: configuration error: spool.path = '{tmp_path / spool}' in "
        f"{tmp_path / 'bridge.yaml'}: cannot spool there: {reason}; point spool.path to a writable directory "
        "(in a container, the spool volume)"
    )


@pytest.mark.parametrize(
    ("arguments", "workers"),
    [(["topics"], 1), (["tail"], 1), (["check-config", "--connect"], 1), (["serve"], 1), (["serve"], 2)],
)
def test_a_client_property_librdkafka_refuses_is_a_configuration_error_in_one_line(
    tmp_path: Path, arguments: list[str], workers: int
) -> None:
    """It was reported as a Kafka failure pointing at the broker's log (exit 4), and with workers as a
    traceback from each worker, restarted again and again."""
    kafka = "{bootstrap_servers: '127.0.0.1:1', client_properties: {no.such.property: 1}}"
    assert refusal(tmp_path, arguments, workers, kafka) == (
        f"idaas-bridge: configuration error: kafka.client_properties.no.such.property in "
        f'{tmp_path / "bridge.yaml"}: No such configuration property: "no.such.property"; correct or remove '
        "that property (librdkafka's CONFIGURATION.md lists the properties and their values)"
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_client_property_refused_from_the_environment_names_its_variable_and_never_its_value(
    tmp_path: Path, workers: int
) -> None:
    environment = {"IDAAS_BRIDGE_KAFKA_CLIENT_SECURITY_PROTOCOL": "kafka-password-0123"}
    assert refusal(tmp_path, ["serve"], workers, environment=environment) == (
        "idaas-bridge: configuration error: IDAAS_BRIDGE_KAFKA_CLIENT_SECURITY_PROTOCOL "
        '(kafka.client_properties.security.protocol): Invalid value for configuration property "security.'
        "protocol\"; correct or remove that property (librdkafka's CONFIGURATION.md lists the properties and "
        "their values)"
    )


def test_a_wrong_override_is_reported_under_its_variable_not_the_file_key(tmp_path: Path) -> None:
    """An operator who set it through the Helm chart's env searched the file for `port: abc` in vain."""
    assert refusal(tmp_path, ["check-config"], environment={"IDAAS_BRIDGE_SERVER__PORT": "abc"}) == (
        "idaas-bridge: configuration error: IDAAS_BRIDGE_SERVER__PORT = 'abc' (server.port): expected a "
        "whole number"
    )


def simulate_nothing_listening(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """`idaas-bridge simulate --json` against a loopback port nobody listens on (a bridge that is down)."""
    from tests.e2e.harness import free_port

    config = tmp_path / "bridge.yaml"
    config.write_text("webhooks: [{name: dev}]\n")
    url = f"http://127.0.0.1:{free_port()}/webhooks/dev"
    env = {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": TOKEN, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [str(BRIDGE), "simulate", "--url", url, "--config", str(config), "--json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result, url


def test_simulate_with_nothing_listening_counts_refused_connections_until_idaas_disables_the_webhook(
    tmp_path: Path,
) -> None:
    result, url = simulate_nothing_listening(tmp_path, "--disable-after", "3", "--count", "7", "--rate", "50")
    assert result.returncode == EXIT_WEBHOOK_DISABLED == 5
    report = json.loads(result.stdout.splitlines()[-1])
    # A delivery already under way when the third failure ended is sent too, but no longer counts.
    sent = report["sent"]
    assert report["failed"] == sent >= 3 and report["not_delivered"] == 7 - sent > 0
    assert report["accepted"] == 0 and report["retried"] == 0  # refused: no retry
    assert report["errors"] == {"connection refused": sent} and report["attempts"] == sent
    assert report["webhook"] == "dev" and report["webhook_state"] == "disabled"
    assert report["would_auto_disable"] is True and report["disable_after"] == 3
    assert report["streak"] == report["max_consecutive_failures"] == 3
    refused, disabled = result.stderr.strip().splitlines()
    assert f"{url}: connection refused (is the bridge running?)" in refused
    assert "IDaaS would have disabled webhook 'dev' after 3 consecutive failed deliveries" in disabled
    assert "IDaaS's is 100" in disabled and f"connection refused: {sent}" in disabled
    assert f"the {7 - sent} event(s) after that were not delivered (webhook disabled)" in disabled
    assert "re-enable the webhook in the IDaaS admin portal" in disabled and "admin_api.reenable" in disabled
    assert "idaas-bridge backfill --from" in disabled


def test_simulate_without_auto_disable_keeps_delivering_and_keeps_the_verdict(tmp_path: Path) -> None:
    result, _ = simulate_nothing_listening(
        tmp_path, "--disable-after", "3", "--count", "6", "--rate", "50", "--no-auto-disable"
    )
    assert result.returncode == EXIT_WEBHOOK_DISABLED
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["sent"] == report["failed"] == 6 and report["not_delivered"] == 0
    assert report["webhook_state"] == "enabled" and report["auto_disable"] is False
    assert (
        report["would_auto_disable"] is True and report["streak"] == report["max_consecutive_failures"] == 6
    )
    assert "--no-auto-disable kept delivering" in result.stderr


def test_simulate_below_the_threshold_is_a_failed_verdict_not_a_disable(tmp_path: Path) -> None:
    result, _ = simulate_nothing_listening(tmp_path, "--count", "4", "--rate", "50")
    assert result.returncode == EXIT_FAILED
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["failed"] == 4 and report["webhook_state"] == "enabled"
    assert report["would_auto_disable"] is False and report["disable_after"] == 100
    assert "would have disabled" not in result.stderr
