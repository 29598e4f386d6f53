"""The open-file limit the connection caps must fit under (the soft limit is lowered and restored here)."""

from __future__ import annotations

import logging
import resource
from collections.abc import Iterator

import pytest

from bridge.open_files import RESERVED_FILES, connections_allowed, raise_limit


@pytest.fixture
def soft_limit_of_1024() -> Iterator[int]:
    """A container's default soft limit; the test process's own is restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard open-file limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_soft_limit_is_raised_to_the_hard_one(soft_limit_of_1024: int) -> None:
    hard = soft_limit_of_1024
    limit = raise_limit()
    if hard == resource.RLIM_INFINITY:
        assert limit == 1024  # nothing to raise it to
    else:
        assert limit == hard and resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)


def test_a_cap_above_what_the_process_may_open_is_lowered_with_a_warning_naming_the_setting(
    soft_limit_of_1024: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.open_files"):
        allowed = connections_allowed(4096, 256, "server.max_connections = 4096 in FILE")
    assert allowed == 1024 - RESERVED_FILES - 256
    (record,) = caplog.records
    assert "server.max_connections = 4096 in FILE" in record.getMessage()
    assert "may open only 1024 files" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bridge.open_files"):
        assert connections_allowed(100, 256, "server.max_connections") == 100
    assert caplog.records == []
