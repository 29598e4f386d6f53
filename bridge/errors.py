"""The one shape of an expected failure in the bridge."""

from __future__ import annotations


class ReasonedError(Exception):
    """An expected failure: `reason` is a short fixed code (a metric label, an API field), the message says
    what happened for a human."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
