"""The operator's commands against the real daemon and the real broker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from bridge.cli import EXIT_WEBHOOK_DISABLED
from bridge.config import load_settings
from bridge.events.samples import sample_deliveries
from bridge.idaas_delivery import DISABLE_AFTER
from bridge.publish.spool import unconfirmed_records
from bridge.routing import Router
from tests.e2e.harness import (
    BridgeProcess,
    consume_all,
    metric_value,
    offline_bridge,
    plain_bridge,
    signed_post,
)
from tests.kafka_broker import LocalKafka, create_topics, free_ports


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


def test_simulate_against_a_bridge_without_kafka_and_a_full_spool_retries_503_until_the_webhook_is_disabled(
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
    assert code == EXIT_WEBHOOK_DISABLED, report
    assert report["would_auto_disable"] is True and report["webhook_state"] == "disabled"
    # Deliveries still under way when the 100th failure ended no longer count: IDaaS has disabled it.
    assert report["max_consecutive_failures"] == report["streak"] == DISABLE_AFTER
    assert report["failed"] == report["sent"] - report["accepted"] >= 100
    assert report["sent"] + report["not_delivered"] == report["events"] == 170
    # Spooled (202), never published (200): Kafka is down.
    assert report["accepted"] > 0 and report["statuses"]["202"] == report["accepted"]
    assert "200" not in report["statuses"]
    # Failed deliveries were answered 503 and retried (3 attempts each, counted once); on a busy machine
    # an attempt may also run past IDaaS's 3 s, which is a failure IDaaS does not retry.
    assert 0 < report["retried"] <= report["failed"]
    assert report["statuses"]["503"] >= report["retried"]
    assert report["statuses"]["503"] + report["errors"].get("timeout", 0) >= report["failed"]
    assert report["attempts"] <= report["accepted"] + 3 * report["failed"]


def assert_disabled(report: dict[str, Any], threshold: int, events: int) -> None:
    """The webhook went disabled at `threshold` failed deliveries, and nothing was sent after that (the
    deliveries already under way when the last failure ended may have been sent, they no longer count)."""
    assert report["webhook_state"] == "disabled" and report["would_auto_disable"] is True, report
    assert report["streak"] == report["max_consecutive_failures"] == threshold == report["disable_after"]
    assert report["accepted"] == 0 and report["failed"] == report["sent"] >= threshold
    assert report["events"] == events == report["sent"] + report["not_delivered"]
    assert report["not_delivered"] > 0


def test_simulate_against_a_stopped_bridge_disables_the_webhook_at_the_threshold(
    bridge: BridgeProcess,
) -> None:
    bridge.stop()  # the outage: connection refused, which IDaaS counts and never retries
    code, report = simulate(bridge, "--disable-after", "5", "--count", "12", "--rate", "20")
    assert code == EXIT_WEBHOOK_DISABLED
    assert_disabled(report, 5, 12)
    assert report["errors"] == {"connection refused": report["sent"]} and report["retried"] == 0

    code, report = simulate(bridge, "--count", "110", "--rate", "100")  # IDaaS's own 100
    assert code == EXIT_WEBHOOK_DISABLED
    assert_disabled(report, DISABLE_AFTER, 110)


def test_simulate_with_a_wrong_token_is_answered_401_until_the_webhook_is_disabled(
    bridge: BridgeProcess,
) -> None:
    bridge.tokens["prod"] = "not-the-token-the-bridge-has"  # the CLI signs with this one, the daemon not
    code, report = simulate(bridge, "--disable-after", "4", "--count", "10", "--rate", "20")
    assert code == EXIT_WEBHOOK_DISABLED
    assert_disabled(report, 4, 10)
    assert report["statuses"] == {"401": report["sent"]} and report["retried"] == 0  # a 4xx: no retry
    first = report["sent"]

    result = bridge.cli(
        "simulate",
        "--url",
        bridge.url(),
        "--cafile",
        str(bridge.workdir / "tls" / "dev-cert.pem"),
        "--count",
        "108",
        "--rate",
        "100",
    )  # the summary table, IDaaS's own 100
    assert result.returncode == EXIT_WEBHOOK_DISABLED, result.stdout + result.stderr
    assert "webhook prod" in result.stdout and "disabled" in result.stdout
    message = result.stderr.strip().splitlines()[-1]
    assert (
        f"IDaaS would have disabled webhook 'prod' after {DISABLE_AFTER} consecutive failed deliveries"
        in (message)
    )
    assert "HTTP 401:" in message and "were not delivered (webhook disabled)" in message
    assert "re-enable the webhook" in message and "idaas-bridge backfill" in message
    # The daemon's own guard saw every signed attempt fail the same way: its streak is the sum of both runs.
    streak = metric_value(bridge.metrics(), "idaas_bridge_failure_streak", webhook="prod")
    assert streak >= first + DISABLE_AFTER


def test_tail_shows_what_simulate_sent_in_every_format(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    bridge = plain_bridge(tmp_path, kafka_bootstrap, topic_prefix)
    bridge.formats = {"authentication": "ecs", "user": "ocsf", "authenticator": "splunk_hec"}
    bridge.start()
    try:
        sent_from = datetime.now(UTC).replace(microsecond=0)
        code, report = simulate(bridge)  # one delivery of each of the 16 types
        sent_until = datetime.now(UTC)
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
    assert all(line["subject"] for line in lines)
    # Stamped when sent, as IDaaS does (the samples' own times are made up, months from now).
    assert all(sent_from <= datetime.fromisoformat(line["time"]) <= sent_until for line in lines), lines
    # Without --json: one plain line (no colour codes off a terminal) per event of the chosen type.
    assert filtered.returncode == 0, filtered.stderr
    (line,) = filtered.stdout.splitlines()
    assert "authentication.failed" in line and "failure" in line and "\x1b[" not in line
    assert f"{bridge.topics['authentication']}/" in line


def verdicts(bridge: BridgeProcess) -> tuple[int, dict[str, dict[str, str]]]:
    result = bridge.cli("check-config", "--connect", "--json", timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return result.returncode, {line["check"]: line for line in lines}


def test_check_config_connect_passes_and_fails_with_a_verdict_for_a_missing_topic(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    bridge = plain_bridge(tmp_path, kafka_bootstrap, topic_prefix)
    code, checks = verdicts(bridge)
    assert code == 0, checks
    assert {line["status"] for line in checks.values()} == {"ok"}
    assert checks["kafka"]["detail"].startswith("1 broker(s) answered")
    user = checks[f"topic {bridge.topics['user']}"]["detail"]
    assert "3 partition(s), replication 1" in user and "max.message.bytes 2162688" in user
    assert "writable" in checks["spool"]["detail"]

    missing = f"{topic_prefix}idaas.nobody-made-this"
    bridge.overrides = {"kafka.topics.user.name": missing}
    bridge.write_config()
    code, checks = verdicts(bridge)
    assert code == 1
    verdict = checks[f"topic {missing}"]
    assert verdict["status"] == "fail"
    assert "does not exist" in verdict["detail"] and "idaas-bridge topics" in verdict["detail"]
    assert "kafka.topics.user.name" in verdict["detail"]
    assert checks["kafka"]["status"] == "ok"


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[LocalKafka]:
    """A broker of its own with kafka.sh's SASL_SSL listener (users admin and bridge, PLAIN)."""
    port, controller, sasl = free_ports(3)
    broker = LocalKafka("cli-sasl", port, controller, sasl_port=sasl)
    broker.stop()  # one a crashed session left behind would hold other ports
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.parametrize(("password", "passes"), [("bridge-secret", True), ("not-the-password", False)])
def test_check_config_connect_authenticates_over_sasl_ssl(
    tmp_path: Path, sasl_broker: LocalKafka, topic_prefix: str, password: str, passes: bool
) -> None:
    bridge = BridgeProcess(
        workdir=tmp_path / "sasl",
        bootstrap=sasl_broker.sasl_bootstrap,
        topic_prefix=topic_prefix,
        tls=False,
        overrides={
            "kafka.client_properties": {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "PLAIN",
                "sasl.username": "bridge",
                "sasl.password": password,
                "ssl.ca.location": str(sasl_broker.sasl_ca),
            }
        },
    )
    create_topics(sasl_broker.bootstrap, list(bridge.topics.values()))
    code, checks = verdicts(bridge)
    kafka = checks["kafka"]
    if passes:
        assert code == 0, checks
        assert kafka["status"] == "ok" and "(SASL_SSL)" in kafka["detail"]
        assert checks["tls kafka ssl.ca.location"]["status"] == "ok"
    else:
        assert code == 1
        assert kafka["status"] == "fail"
        assert "SASL authentication error" in kafka["detail"]
        assert "IDAAS_BRIDGE_KAFKA_CLIENT_SASL_PASSWORD" in kafka["detail"]
        assert password not in json.dumps(checks)
        assert not any(check.startswith("topic ") for check in checks)


def test_replay_moves_fixed_dead_letters_back_exactly_once(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    bridge = plain_bridge(tmp_path, kafka_bootstrap, topic_prefix)
    bridge.start()
    try:
        # A dead letter no fix can help: the body is not JSON.
        answer = signed_post(bridge, b"{not json")
        assert answer.json()["status"] == "deadlettered"
    finally:
        bridge.stop()
    # Two dead letters an older bridge made of valid deliveries (say, before its normalizer was fixed):
    # written as the bridge writes dead letters, with the raw body.
    settings = load_settings(bridge.config_path, bridge.environment())
    router = Router(settings.kafka)
    samples = {sample["type"]: sample for sample in sample_deliveries()}
    fixed = [
        dict(samples["authentication.failed"], id="fixed-1"),
        dict(samples["user.created"], id="fixed-2"),
    ]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for body in fixed:
        letter = router.deadletter(json.dumps(body).encode(), "normalizer bug", "prod", datetime.now(UTC))
        producer.produce(letter.topic, letter.value, letter.key, headers=letter.headers)
    assert producer.flush(10) == 0

    dry = bridge.cli("replay", "deadletters", "--dry-run")
    assert dry.returncode == 1, dry.stderr  # one dead letter still fails
    assert "would publish 2 event(s)" in dry.stdout and "1 dead letter(s) still fail" in dry.stdout
    first = bridge.cli("replay", "deadletters")
    assert first.returncode == 1, first.stderr
    assert "published 2 event(s)" in first.stdout and "invalid_json: 1" in first.stdout
    again = bridge.cli("replay", "deadletters")
    assert again.returncode == 0, again.stderr
    assert "published 0 event(s)" in again.stdout

    events = consume_all(kafka_bootstrap, [bridge.topics["authentication"], bridge.topics["user"]], 2)
    assert sorted(dict(m.headers() or [])["idaas-delivery-id"] for m in events) == [b"fixed-1", b"fixed-2"]
    assert {m.topic() for m in events} == {bridge.topics["authentication"], bridge.topics["user"]}


@pytest.mark.parametrize("workers", [1, 2])
def test_replay_publishes_the_spool_a_dead_pod_left(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, workers: int
) -> None:
    dead = offline_bridge(tmp_path, kafka_bootstrap, topic_prefix)
    dead.overrides["server.workers"] = workers  # 2: the records are in spool/worker-0 and worker-1
    dead.start()
    assert dead.process is not None
    children = Path(f"/proc/{dead.process.pid}/task/{dead.process.pid}/children")
    sent = list(sample_deliveries())[:5]
    for number, sample in enumerate(sent):
        answer = signed_post(dead, json.dumps(dict(sample, id=f"spooled-{number}")).encode())
        assert answer.json()["status"] == "spooled"
    worker_pids = [Path(f"/proc/{pid}") for pid in children.read_text().split()]
    dead.kill()  # the pod died with its spool full (its workers stop on their own: they outlive nothing)
    deadline = time.monotonic() + 30
    while any(pid.exists() for pid in worker_pids):
        assert time.monotonic() < deadline, "workers outlived their serving process"
        time.sleep(0.1)
    spool = dead.workdir / "spool"
    # The operator points a bridge configuration at the healthy Kafka and replays the dead pod's spool.
    operator = dead.restarted_with(kafka_bootstrap)
    operator.write_config()

    dry = operator.cli("replay", "spool", str(spool), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would publish 5 spooled record(s)" in dry.stdout
    replay = operator.cli("replay", "spool", str(spool))
    assert replay.returncode == 0, replay.stderr
    assert "published 5 spooled record(s)" in replay.stdout
    assert list(unconfirmed_records(spool)) == []
    again = operator.cli("replay", "spool", str(spool))
    assert "published 0 spooled record(s)" in again.stdout

    events = consume_all(kafka_bootstrap, dead.topics.values(), 5)
    ids = sorted(dict(m.headers() or [])["idaas-delivery-id"] for m in events)
    assert ids == [f"spooled-{number}".encode() for number in range(5)]


def test_topics_create_then_describe(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> None:
    bridge = BridgeProcess(
        workdir=tmp_path / "topics", bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, tls=False
    )
    missing = bridge.cli("topics", "describe")
    assert missing.returncode == 1
    assert missing.stdout.count("does not exist") == 5
    created = bridge.cli("topics", "create", "--partitions", "2", "--retention-ms", "259200000")
    assert created.returncode == 0, created.stderr
    assert "5 topic(s) created, all with a leader" in created.stdout
    assert bridge.cli("topics").stdout.strip() == "all topics exist"  # create is the default, idempotent
    described = bridge.cli("topics", "describe")
    assert described.returncode == 0, described.stderr
    for name in bridge.topics.values():
        assert name in described.stdout
    assert described.stdout.count("2 partition(s), replication 1") == 5
    assert described.stdout.count("retention.ms 259200000") == 5


def test_simulate_against_an_untrusted_certificate_is_one_line_and_a_runtime_failure(
    bridge: BridgeProcess,
) -> None:
    result = bridge.cli("simulate", "--url", bridge.url(), "--count", "3")  # no --cafile: self-signed
    assert result.returncode == 4
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "TLS certificate not trusted" in line and "--cafile" in line
