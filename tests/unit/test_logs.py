"""The JSON log line: extras become keys; record internals and terminal colours do not."""

from __future__ import annotations

import json
import logging

from bridge.logs import JsonFormatter


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
