"""Per-request CPU cost of each pure-Python pipeline stage, in one process with no I/O: where the bridge's
own microseconds go, without HTTP, Kafka or the machine's other load in the way."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from bridge import auth
from bridge.events.envelope import parse_envelope
from bridge.events.normalize import normalize
from bridge.events.samples import sample_deliveries
from bridge.formats import FORMATS

URL = "https://bridge.example/webhooks/prod"
TOKEN = "bench-token-0123456789"


def per_call_microseconds(action: Callable[[], object], repeat: int = 20_000) -> float:
    for _ in range(1000):
        action()
    started = time.perf_counter()
    for _ in range(repeat):
        action()
    return (time.perf_counter() - started) / repeat * 1e6


def stage_costs() -> dict[str, float]:
    sample = sample_deliveries()[2]
    body = orjson.dumps(sample)
    headers = auth.sign(TOKEN, "POST", URL, body, int(time.time()))
    signed = auth.SignedHeaders(
        method="POST",
        target_uri=URL,
        content_digest=headers["content-digest"],
        signature_input=headers["signature-input"],
        signature=headers["signature"],
    )
    request = auth.SignedRequest(signed, body)
    envelope = parse_envelope(body)
    event = normalize(envelope, "prod", datetime.now(UTC))
    costs = {
        "verify signature (RFC 9421 + digest)": per_call_microseconds(
            lambda: auth.verify(request, [TOKEN], time.time(), 300)
        ),
        "parse envelope": per_call_microseconds(lambda: parse_envelope(body)),
        "normalize": per_call_microseconds(lambda: normalize(envelope, "prod", datetime.now(UTC))),
    }
    for name, event_format in sorted(FORMATS.items()):
        costs[f"encode {name}"] = per_call_microseconds(lambda f=event_format: f.encode(event))  # type: ignore[misc]
    return costs


def report() -> str:
    costs = stage_costs()
    total = sum(costs.values())
    lines = ["| stage | µs per call | share |", "|---|--:|--:|"]
    lines += [f"| {stage} | {micros:.1f} | {micros / total:.0%} |" for stage, micros in costs.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
