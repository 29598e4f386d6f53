"""One bridge per spool.path against the real broker: a second bridge started with the same configuration
(a copied values file on a shared volume, `serve` run twice) stops at start-up with one line naming the
first, and so does `replay spool` of the running bridge's spool; the first keeps serving."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bridge.cli.exits import EXIT_CONFIG, EXIT_RUNTIME
from tests.e2e.harness import BridgeProcess, consume_all, plain_bridge, signed_post
from tests.e2e.hostile import delivery

pytestmark = pytest.mark.kafka

#: How long the first bridge's workers may take to be ready on two shared cores.
TIMEOUT = 30.0


def delivered(bridge: BridgeProcess) -> httpx.Response:
    """A signed delivery, once the bridge (all its workers) is ready for one."""
    deadline = time.monotonic() + TIMEOUT
    with bridge.ops_client() as client:
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, f"not ready within {TIMEOUT} s:\n{bridge.log_tail()}"
            time.sleep(0.1)
    return signed_post(bridge, delivery())


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_bridge_on_the_same_spool_path_stops_and_the_first_keeps_serving(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, workers: int
) -> None:
    first = plain_bridge(tmp_path, kafka_bootstrap, topic_prefix, **{"server.workers": workers})
    first.start()
    try:
        assert first.process is not None
        assert delivered(first).status_code == 200
        spool = first.workdir / "spool"

        second = first.cli("serve", timeout=60)  # the same file: same spool.path, same ports
        assert second.returncode == EXIT_CONFIG, second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        assert second.stderr.splitlines() == [
            f"idaas-bridge: configuration error: spool.path = '{spool}' in {first.config_path}: in use by "
            f"another bridge (pid {first.process.pid}); give each bridge its own spool.path"
        ]

        replay = first.cli("replay", "spool", str(spool))
        assert replay.returncode == EXIT_RUNTIME, replay.stderr
        assert replay.stderr.splitlines() == [
            f"idaas-bridge replay: {spool} is in use by another bridge (pid {first.process.pid}); `replay "
            "spool` is for the spool a dead pod left: a running bridge drains its own"
        ]

        answer = delivered(first)
        assert answer.status_code == 200 and answer.json()["status"] == "published", answer.text
        assert first.exited() is None
    finally:
        first.stop()
    assert len(consume_all(kafka_bootstrap, first.topics.values(), 2)) == 2
