"""The operations listener's endpoint: GET /healthz, /readyz and /metrics, nothing else.

Served by the same HTTP protocol as the webhooks (bridge/http_protocol.py), with its limits and deadlines,
on a port of its own that nobody on the Internet reaches. The single process's endpoints read the Bridge;
with several workers the serving process answers for all of them (bridge/workers.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from bridge.http_message import Answer, Request, json_answer

METRICS_CONTENT_TYPE: Final = CONTENT_TYPE_LATEST.encode()
NOT_FOUND: Final = json_answer(
    404, {"error": "not_found", "detail": "this port serves GET /healthz, /readyz and /metrics"}
)
ONLY_GET: Final = json_answer(
    405, {"error": "method_not_allowed", "detail": "GET only"}, [("Allow", "GET, HEAD")]
)


def readiness_answer(body: Mapping[str, Any]) -> Answer:
    """/readyz: 200 while `body["ready"]`, else 503, with the body either way."""
    return Answer(200 if body["ready"] else 503, orjson.dumps(body))


def metrics_answer(exposition: bytes) -> Answer:
    return Answer(200, exposition, METRICS_CONTENT_TYPE)


class OpsEndpoints:
    """Path → a function giving its answer; GET and HEAD only."""

    headers: Final = frozenset[bytes]()

    def __init__(self, routes: Mapping[str, Callable[[], Answer]]) -> None:
        self._routes = dict(routes)

    async def handle(self, request: Request) -> Answer:
        route = self._routes.get(request.path)
        if route is None:
            return NOT_FOUND
        if request.method not in ("GET", "HEAD"):
            return ONLY_GET
        return route()
