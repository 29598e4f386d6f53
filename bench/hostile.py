"""The receiver's and the transport's attacks, measured: for each, a valid delivery's answer time and the
bridge's peak RSS during the attack, plus what the attack did (failure streak, records stored, /metrics
size, sockets left open). Figures from one run on this machine; they go to the issue's closing note and docs
by hand, never into a test.

    python -m bench.hostile                       the bridge of this checkout
    python -m bench.hostile --source DIR          the bridge package of another checkout (e.g. an older
                                                  commit in a `git worktree`), same venv, for before/after
    python -m bench.hostile --only TEXT           only the attacks whose name contains TEXT

Needs the local Kafka (make kafka-up; KAFKA_PORT is honoured). Loopback only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.e2e.harness import BridgeProcess, consume_all, metric_value
from tests.e2e.hostile import (
    MiB,
    closed_by_peer,
    delivery,
    hang_up_mid_body,
    hold_open_after_early_answers,
    oversized_digest,
    peak_rss,
    post_junk,
    replay_concurrently,
    signed_headers,
    silent_connections,
    slow_bodies,
    stream_headers,
    timed_post,
)
from tests.kafka_broker import LocalKafka, create_topics

#: Small enough that the slow-body attack can fill it with a bounded number of connections.
LIMIT_CONCURRENCY = 32
#: Slow legacy-shaped bodies besides LIMIT_CONCURRENCY unsigned ones: together they stay below uvicorn's
#: connection cap (2 x LIMIT_CONCURRENCY), so what is measured is the receiver's slots, not that cap.
LEGACY_SLOW_BODIES = 24


def valid_delivery(bridge: BridgeProcess) -> str:
    body = delivery()
    status, seconds = timed_post(bridge, body, signed_headers(bridge, body))
    return f"valid delivery {status} in {seconds * 1000:.0f} ms"


def during(bridge: BridgeProcess, attack: Callable[[], object]) -> str:
    """The valid delivery's answer, sent while `attack` runs in the background."""
    with peak_rss(bridge) as peak, ThreadPoolExecutor(1) as pool:
        running = pool.submit(attack)
        time.sleep(0.2)
        answer = valid_delivery(bridge)
        running.result(timeout=60)
    return f"{answer}; peak RSS {peak[0] / 2**20:.0f} MiB"


def slow_bodies_attack(bridge: BridgeProcess) -> str:
    body = delivery()
    unsigned = {"Content-Digest": "sha-256=:AAAA:", "Signature-Input": "sig=(", "Signature": "sig=:AAAA:"}
    legacy = {"x-sha2-signature": "ab" * 32}
    with (
        peak_rss(bridge) as peak,
        slow_bodies(bridge, "prod", unsigned, body, count=LIMIT_CONCURRENCY),
        slow_bodies(bridge, "old", legacy, body, count=LEGACY_SLOW_BODIES),
    ):
        time.sleep(0.5)
        answer = valid_delivery(bridge)
    return f"{answer}; peak RSS {peak[0] / 2**20:.0f} MiB"


def junk_attack(bridge: BridgeProcess) -> str:
    answer = during(bridge, lambda: post_junk(bridge, "quiet", count=60))
    streak = metric_value(bridge.metrics(), "idaas_bridge_failure_streak", webhook="quiet")
    return f"{answer}; failure streak after 60 junk requests: {streak:.0f}"


def hang_up_attack(bridge: BridgeProcess) -> str:
    body = delivery()
    headers = signed_headers(bridge, body)
    legacy_body = delivery()

    def attack() -> None:
        hang_up_mid_body(bridge, "prod", headers, body, count=10)
        hang_up_mid_body(bridge, "old", {"x-sha2-signature": "cd" * 32}, legacy_body, count=10)

    answer = during(bridge, attack)
    time.sleep(0.5)
    tracebacks = bridge.log_path.read_text().count("Traceback")
    return f"{answer}; tracebacks in the log after 20 hang-ups: {tracebacks}"


def replay_attack(bridge: BridgeProcess) -> str:
    body = delivery()
    headers = signed_headers(bridge, body)
    answers: list[int] = []
    answer = during(
        bridge, lambda: answers.extend(r.status_code for r in replay_concurrently(bridge, body, headers, 10))
    )
    delivery_id = json.loads(body)["id"]
    stored = consume_all(bridge.bootstrap, [bridge.topics["user"]], expected=1, timeout=10)
    copies = [json.loads(m.value() or b"{}").get("id") for m in stored].count(delivery_id)
    return f"{answer}; 10 concurrent copies answered {sorted(answers)}, stored {copies} time(s)"


def resource_attack(bridge: BridgeProcess) -> str:
    size_before = len(bridge.metrics())

    def attack() -> None:
        with bridge.client() as client:
            for index in range(200):
                name = "x" * 65536 if index == 0 else f"app-{index}"
                body = delivery("authentication.succeeded", resourceName=name)
                client.post("/webhooks/prod", content=body, headers=signed_headers(bridge, body))

    answer = during(bridge, attack)
    metrics = bridge.metrics()
    series = sum(line.startswith("idaas_bridge_authentications_total{") for line in metrics.splitlines())
    return f"{answer}; /metrics {size_before} -> {len(metrics)} bytes, {series} authentications_total series"


def held_open_attack(bridge: BridgeProcess) -> str:
    with peak_rss(bridge) as peak:
        held = hold_open_after_early_answers(bridge.port, count=4 * LIMIT_CONCURRENCY)
        answer = valid_delivery(bridge)
    still_open = sum(not closed_by_peer(connection, within=2.0) for connection, _ in held)
    for connection, _ in held:
        connection.close()
    return (
        f"{answer}; peak RSS {peak[0] / 2**20:.0f} MiB; {still_open} of {len(held)} sockets held after "
        "early answers still open 2 s later"
    )


def digest_attack(bridge: BridgeProcess) -> str:
    answers: list[bytes] = []
    answer = during(bridge, lambda: answers.append(oversized_digest(bridge.port, 4 * MiB)))
    status = answers[0].split(b"\r\n")[0].decode() or "(reset, no answer)"
    return f"{answer}; the attack got {status}"


def header_stream_attack(bridge: BridgeProcess) -> str:
    per_connection = 96 * MiB
    with peak_rss(bridge) as peak, ThreadPoolExecutor(2) as pool:
        streams = [pool.submit(stream_headers, bridge.port, per_connection) for _ in range(2)]
        time.sleep(0.2)
        answer = valid_delivery(bridge)
        sent = [stream.result(timeout=300) for stream in streams]
    taken = ", ".join(f"{size / MiB:.1f}" for size in sent)
    return f"{answer}; peak RSS {peak[0] / 2**20:.0f} MiB; MiB sent before the bridge stopped taking: {taken}"


def silent_tls_attack(bridge: BridgeProcess) -> str:
    opened = time.monotonic()
    silent = silent_connections(bridge.port, 50)
    with peak_rss(bridge) as peak:
        answer = valid_delivery(bridge)
    closed = [
        closed_by_peer(connection, within=max(0.0, opened + 75 - time.monotonic())) for connection in silent
    ]
    for connection in silent:
        connection.close()
    return (
        f"{answer}; peak RSS {peak[0] / 2**20:.0f} MiB; {sum(closed)} of 50 silent TCP connections to the "
        f"TLS port closed by the bridge after {time.monotonic() - opened:.1f} s"
    )


ATTACKS: dict[str, Callable[[BridgeProcess], str]] = {
    f"slow bodies ({LIMIT_CONCURRENCY} unsigned + {LEGACY_SLOW_BODIES} legacy-shaped)": slow_bodies_attack,
    "junk raising the streak (60)": junk_attack,
    "mid-body hang-ups (20)": hang_up_attack,
    "concurrent replays (10 copies)": replay_attack,
    "resourceName values (200, one of 64 KiB)": resource_attack,
    "held-open sockets after early answers (128)": held_open_attack,
    "digest of 4 MiB (one request)": digest_attack,
    "header streaming (2 connections x 96 MiB)": header_stream_attack,
    "silent TLS connections (50)": silent_tls_attack,
}
#: Attacks on the TLS handshake need a bridge that terminates TLS itself.
TLS_ATTACKS = frozenset({"silent TLS connections (50)"})


class SinglePortBridge(BridgeProcess):
    """A bridge from before the operations port (issue 8): /metrics, /readyz and /healthz on its one port."""

    def config(self) -> dict[str, Any]:
        document = super().config()
        del document["server"]["ops_host"], document["server"]["ops_port"]
        return document

    @property
    def ops_url(self) -> str:
        return self.base_url

    def ops_client(self, **kwargs: Any) -> Any:
        return self.client(**kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", help="checkout whose bridge package to run (default: this one)")
    parser.add_argument("--only", default="", help="run only the attacks whose name contains this")
    args = parser.parse_args()
    kind = BridgeProcess
    if args.source:  # the daemon imports `bridge` from there: PYTHONPATH wins over the editable install
        os.environ["PYTHONPATH"] = str(Path(args.source).resolve())
        if not (Path(args.source) / "bridge/servers.py").exists():
            kind = SinglePortBridge
    broker = LocalKafka.for_session().started()
    with tempfile.TemporaryDirectory() as workdir:
        for name, attack in ATTACKS.items():
            if args.only not in name:
                continue
            bridge = kind(
                workdir=Path(workdir) / name.split()[0],
                bootstrap=broker.bootstrap,
                topic_prefix=f"b{uuid.uuid4().hex[:10]}.",
                tls=name in TLS_ATTACKS,
                overrides={"server.limit_concurrency": LIMIT_CONCURRENCY},
            )
            create_topics(broker.bootstrap, list(bridge.topics.values()))
            bridge.tokens = {hook: f"{hook}-token-0123456789" for hook in ("prod", "old", "quiet")}
            bridge.webhook_settings = {"old": {"legacy_sha2_signature": True}}
            bridge.start()
            try:
                baseline = f"idle RSS {bridge.rss_bytes() / 2**20:.0f} MiB, {valid_delivery(bridge)}"
                print(f"{name}: {attack(bridge)} ({baseline})", flush=True)
            finally:
                bridge.stop()


if __name__ == "__main__":
    main()
