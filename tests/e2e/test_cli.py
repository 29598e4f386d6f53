"""The operator's commands against the real daemon and the real broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bridge.events.samples import sample_deliveries
from tests.e2e.harness import BridgeProcess, plain_bridge


def summary(stdout: str) -> dict[str, Any]:
    """simulate --json: the summary is the last line."""
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def simulate(bridge: BridgeProcess, *args: str, timeout: float = 120.0) -> tuple[int, dict[str, Any]]:
    extra = ["--cafile", str(bridge.workdir / "tls" / "dev-cert.pem")] if bridge.tls else []
    result = bridge.cli("simulate", "--url", bridge.url(), *extra, "--json", *args, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, summary(result.stdout)


def test_simulate_against_a_healthy_bridge_reports_no_retry_and_no_failure(bridge: BridgeProcess) -> None:
    code, report = simulate(bridge, "--count", "24", "--rate", "20")
    assert code == 0, report
    assert report["sent"] == 24 and report["accepted"] == 24 and report["accepted_first_try"] == 24
    assert report["retried"] == 0 and report["failed"] == 0 and report["max_consecutive_failures"] == 0
    assert report["would_auto_disable"] is False
    assert report["statuses"] == {"200": 24}
    assert 0 < report["p50_ms"] <= report["p99_ms"] < 3000


def test_simulate_against_a_bridge_without_kafka_and_a_full_spool_would_auto_disable(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Kafka unreachable and the smallest spool allowed (one 64 KiB segment): the first few dozen
    # deliveries are spooled (202), every later one is answered 503, retried twice and fails.
    bridge = plain_bridge(
        tmp_path,
        kafka_bootstrap,
        topic_prefix,
        "127.0.0.1:1",
        **{"spool.ack_mode": "spool_first", "spool.max_bytes": 65536, "spool.segment_bytes": 65536},
    )
    bridge.start()
    try:
        code, report = simulate(bridge, "--count", "170", "--rate", "60", timeout=180)
    finally:
        bridge.stop()
    assert code == 1, report
    assert report["would_auto_disable"] is True
    assert report["max_consecutive_failures"] >= 100
    assert report["failed"] == report["sent"] - report["accepted"] >= 100
    # Spooled (202), never published (200): Kafka is down.
    assert report["accepted"] > 0 and report["statuses"]["202"] == report["accepted"]
    assert "200" not in report["statuses"]
    # Failed deliveries were answered 503 and retried (3 attempts each, counted once); on a busy machine
    # an attempt may also run past IDaaS's 3 s, which is a failure IDaaS does not retry.
    assert 0 < report["retried"] <= report["failed"]
    assert report["statuses"]["503"] >= report["retried"]
    assert report["statuses"]["503"] + report["errors"].get("timeout", 0) >= report["failed"]
    assert report["attempts"] <= report["accepted"] + 3 * report["failed"]


def test_tail_shows_what_simulate_sent_in_every_format(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    bridge = plain_bridge(tmp_path, kafka_bootstrap, topic_prefix)
    bridge.formats = {"authentication": "ecs", "user": "ocsf", "authenticator": "splunk_hec"}
    bridge.start()
    try:
        code, report = simulate(bridge)  # one delivery of each of the 16 types
        assert code == 0 and report["accepted"] == 16, report
        result = bridge.cli("tail", "--from-beginning", "--json", "--limit", "16", "--timeout", "60")
        filtered = bridge.cli(
            "tail", "--from-beginning", "--type", "authentication.failed", "--limit", "1", "--timeout", "60"
        )
    finally:
        bridge.stop()
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    sent = {sample["type"] for sample in sample_deliveries()}
    assert {line["type"] for line in lines} == sent
    by_type = {line["type"]: line for line in lines}
    failed = by_type["authentication.failed"]  # ECS
    assert failed["outcome"] == "failure" and failed["source_ip"] and failed["subject"]
    assert failed["topic"] == bridge.topics["authentication"] and failed["offset"] >= 0
    assert by_type["authentication.succeeded"]["outcome"] == "success"
    assert by_type["user.created"]["topic"] == bridge.topics["user"]  # OCSF
    assert by_type["passkey.created"]["topic"] == bridge.topics["authenticator"]  # Splunk HEC
    assert all(line["time"] and line["subject"] for line in lines)
    # Without --json: one plain line (no colour codes off a terminal) per event of the chosen type.
    assert filtered.returncode == 0, filtered.stderr
    (line,) = filtered.stdout.splitlines()
    assert "authentication.failed" in line and "failure" in line and "\x1b[" not in line
    assert f"{bridge.topics['authentication']}/" in line
