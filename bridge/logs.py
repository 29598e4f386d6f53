"""One JSON object per line on stdout, the shape log shippers in Kubernetes expect.

Fields passed through `extra=` become top-level keys. Tokens and payloads are never passed at INFO.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime
from typing import Final

import orjson

#: Attributes every LogRecord has, and uvicorn's terminal-coloured copy of its message (ANSI escapes in a
#: JSON log are noise); anything else on a record came from `extra=` and is logged.
STANDARD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in STANDARD_ATTRIBUTES:
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


class ThrottledLog:
    """At most one INFO line per key and interval; the others go to DEBUG and are counted in the next line.

    For events anyone on the internet can cause (a rejected request): the operator learns that they happen,
    how often and from where, but a flood cannot flood the log. Keys must come from a bounded set.
    """

    def __init__(
        self, logger: logging.Logger, interval_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._interval = interval_seconds
        self._clock = clock
        #: key -> (when the next INFO line may be written, events sent to DEBUG since the last one)
        self._state: dict[Hashable, tuple[float, int]] = {}

    def info(self, key: Hashable, message: str, extra: Mapping[str, object]) -> None:
        now = self._clock()
        next_line, suppressed = self._state.get(key, (now, 0))
        if now < next_line:
            self._state[key] = (next_line, suppressed + 1)
            self._logger.debug(message, extra=extra)
            return
        self._state[key] = (now + self._interval, 0)
        self._logger.info(message, extra={**extra, "suppressed_since_last": suppressed})
