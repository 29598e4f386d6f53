"""The JSON log line: extras become keys; record internals and terminal colours do not."""

from __future__ import annotations

import json
import logging

import pytest

from bridge.logs import JsonFormatter, ThrottledLog


def test_extras_are_keys_and_uvicorns_coloured_copy_of_the_message_is_dropped() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, "x.py", 1, "Started server process [%d]", (7,), None
    )
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    record.webhook = "prod"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "Started server process [7]"
    assert line["webhook"] == "prod" and line["level"] == "INFO" and line["logger"] == "uvicorn.error"
    assert set(line) == {"time", "level", "logger", "message", "webhook"}


def test_throttled_log_writes_one_info_line_per_key_and_interval_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    throttled = ThrottledLog(logging.getLogger("test.throttle"), 60, clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="test.throttle"):
        for _ in range(5):
            throttled.info(("prod", "signature_mismatch"), "delivery rejected", {"peer": "192.0.2.1"})
        throttled.info(("prod", "missing_label"), "delivery rejected", {"peer": "192.0.2.2"})
        now[0] = 61
        throttled.info(("prod", "signature_mismatch"), "delivery rejected", {"peer": "192.0.2.3"})
    info = [r for r in caplog.records if r.levelno == logging.INFO]
    assert [(r.peer, r.suppressed_since_last) for r in info] == [  # type: ignore[attr-defined]
        ("192.0.2.1", 0),
        ("192.0.2.2", 0),
        ("192.0.2.3", 4),
    ]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4
