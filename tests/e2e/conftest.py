"""E2E fixtures: a bridge daemon process per test module part, with fresh topics on the real broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess
from tests.kafka_broker import create_topics


@pytest.fixture
def bridge(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> Iterator[BridgeProcess]:
    process = BridgeProcess(workdir=tmp_path / "bridge", bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    create_topics(kafka_bootstrap, list(process.topics.values()))
    process.start()
    yield process
    process.stop()
