"""The operator's commands against the real daemon and the real broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        code, report = simulate(bridge, "--count", "170", "--rate", "100", timeout=180)
    finally:
        bridge.stop()
    assert code == 1
    assert report["would_auto_disable"] is True
    assert report["max_consecutive_failures"] >= 100
    assert report["accepted"] > 0 and report["statuses"]["202"] == report["accepted"]
    assert report["failed"] == report["sent"] - report["accepted"] >= 100
    # Each failed delivery was answered 503 three times: retried, and counted once.
    assert report["retried"] == report["failed"]
    assert report["statuses"]["503"] == 3 * report["failed"]
    assert report["attempts"] == report["accepted"] + 3 * report["failed"]
