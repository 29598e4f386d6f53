"""pytest plugin: one real Kafka broker per test session, and a fresh topic prefix per test.

Loaded from tests/conftest.py with `pytest_plugins = ["tests.kafka_fixtures"]`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.kafka_broker import LocalKafka, wait_for_broker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of the session's broker.

    KAFKA_BOOTSTRAP_SERVERS names an external broker (CI service, a developer's cluster). Otherwise
    LocalKafka.for_session() decides: a private local broker on free ports, or with KAFKA_PORT the project's
    default one on that port. A broker that was already running is left running; one this fixture started
    is stopped again so test runs leave no JVM behind.
    """
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        wait_for_broker(configured, timeout=30)
        yield configured
        return
    broker = LocalKafka.for_session()
    started_here = not broker.running()
    broker = broker.started()
    yield broker.bootstrap
    if started_here:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic prefix, so each test reads only what it wrote even on a long-lived shared broker."""
    return f"t{uuid.uuid4().hex[:10]}."
