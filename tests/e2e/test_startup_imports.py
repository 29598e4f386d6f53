"""What the daemon loads: not the operator tools' libraries. Every module `serve` imports sits in each
worker's memory and start-up time, so rich (the tables and progress bars of check-config, tail, topics,
replay, simulate), httpx (simulate's HTTP client) and pygments must stay out of it. click stays: uvicorn's
package imports it whatever part of uvicorn is used."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bridge.events.samples import sample_deliveries
from tests.e2e.harness import plain_bridge, signed_post

pytestmark = pytest.mark.kafka

#: Loaded by the operator's commands only; never by `idaas-bridge serve`.
TOOLS_ONLY = ("rich", "httpx", "pygments", "markdown_it")

#: `idaas-bridge <argv[2:]>` that writes its sys.modules to argv[1] when SIGTERM ends it: uvicorn stops
#: the server gracefully, then restores this handler and raises the signal again.
RECORDING = """
import json, os, signal, sys
from pathlib import Path
from bridge.cli.main import main

def record_then_end(signum, frame):
    Path(sys.argv[1]).write_text(json.dumps(sorted(sys.modules)))
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)

signal.signal(signal.SIGTERM, record_then_end)
sys.exit(main(sys.argv[2:]))
"""


def test_serve_never_imports_the_operator_tools_libraries(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    record = tmp_path / "modules.json"
    bridge = plain_bridge(tmp_path, kafka_bootstrap, topic_prefix)
    bridge.program = [sys.executable, "-c", RECORDING, str(record)]
    bridge.start()
    try:  # one delivery: the hot path's modules too
        assert signed_post(bridge, json.dumps(sample_deliveries()[0]).encode()).status_code == 200
    finally:
        bridge.stop()
    modules = set(json.loads(record.read_text()))
    assert "bridge.cli.serve" in modules and "bridge.http_protocol" in modules  # it did serve
    assert sorted(name for name in modules if name.split(".")[0] in TOOLS_ONLY) == []
