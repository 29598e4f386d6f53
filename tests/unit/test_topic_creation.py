"""Topic creation's failures as an operator reads them (`idaas-bridge topics` prints the text)."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.publish.topics import create_topics


class UnansweredAdmin:
    """An admin client whose CreateTopics is never answered, as when the controller cannot be reached."""

    def list_topics(self, timeout: float) -> Any:
        return SimpleNamespace(topics={})

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Future[None]]:
        return {topic.topic: Future() for topic in topics}


def test_an_unanswered_creation_names_the_topic_and_the_wait() -> None:
    with pytest.raises(TimeoutError) as raised:
        create_topics(UnansweredAdmin(), ["idaas.user"], 3, 1, {}, timeout=0.2)  # type: ignore[arg-type]
    assert str(raised.value) == "the brokers did not confirm the creation of topic idaas.user within 0.2 s"
