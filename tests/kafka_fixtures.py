"""pytest plugin: one real broker per test session (or KAFKA_BOOTSTRAP_SERVERS) and fresh topic prefixes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.kafka_broker import LocalKafka


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The shared broker: the one named by KAFKA_BOOTSTRAP_SERVERS, else the project's local broker."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    broker = LocalKafka()
    already_running = broker.running()
    broker.start()
    yield broker.bootstrap
    if not already_running:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A unique prefix so each test reads only what it wrote."""
    return f"t{uuid.uuid4().hex[:10]}."
