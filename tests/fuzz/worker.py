"""One fuzz worker: hypothesis drives its share of the examples through an in-process bridge.

tests/fuzz/test_receiver_fuzz.py starts several of these at once (drawing examples is CPU-bound and
single-threaded, so one process leaves the other cores idle), each with its own fixed seed, and sums their
reports. Run alone to reproduce a failure, with the command the test prints:

    python -m tests.fuzz.worker --bootstrap HOST:PORT --topic-prefix P --seed S --examples N \
        --workdir DIR --report FILE

The receiver runs behind the bridge's HTTP protocol (each request written to it as bytes, over a recording
transport instead of a socket) so that 100,000 examples stay affordable; publishing goes to the real broker.
Properties: never a 5xx, never an exception, 401 exactly when the signature does not verify; the report
lists what each authenticated delivery became, for the test to find in Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from uvicorn.server import ServerState

from bridge.app import Bridge, create_app
from bridge.config import load_settings
from bridge.events.catalog import EVENT_TYPES
from bridge.http_protocol import HttpProtocol, http_listener
from tests.e2e.harness import topic_names
from tests.kafka_broker import create_topics
from tests.recording_transport import RecordingTransport
from tests.signing import idaas_headers

TOKEN = "fuzz-token-0123456789"
URL = "https://bridge.example/webhooks/prod"

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=5,
)
envelopes = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "type": st.sampled_from([row.name for row in EVENT_TYPES] + ["brand.new.type"]),
        "accountId": st.text(min_size=1, max_size=12),
        "eventTime": st.sampled_from(["2026-11-22T10:00:00Z", "2026-11-22T10:00:00.123+02:00"]),
        "data": st.dictionaries(
            st.sampled_from(
                [
                    "subject",
                    "subjectName",
                    "resourceName",
                    "sourceIp",
                    "token",
                    "entityType",
                    "entityId",
                    "entityName",
                    "entityAttributes",
                    "subscriberAdminRoleName",
                ]
            ),
            json_values,
            max_size=8,
        ),
    },
    optional={"extra": json_values},
)
bodies = (
    envelopes.map(orjson.dumps)
    | json_values.map(orjson.dumps)
    | st.binary(max_size=200)
    | envelopes.map(lambda e: {k: v for k, v in e.items() if k != "id"}).map(orjson.dumps)
)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120)
#: A fifth of the range is signed correctly, about one example in ten in practice (Hypothesis favours small
#: integers, so the valid kinds sit at the top of the range): each of those waits for a real Kafka ack,
#: the rest stay in-process.
INVALID_KINDS = ("wrong_token", "random_headers", "mangled_input", "no_headers")
signing = st.integers(0, 99).map(
    lambda n: ("valid" if n % 2 else "sha512") if n >= 80 else INVALID_KINDS[n % len(INVALID_KINDS)]
)


class Harness:
    """A bridge, its event loop, and what the fuzz run expects to find in Kafka afterwards."""

    def __init__(self, bridge: Bridge, loop: asyncio.AbstractEventLoop) -> None:
        self.bridge = bridge
        self.loop = loop
        settings = bridge.settings.server
        self.listener = http_listener(settings, bridge.receiver, 2 * settings.limit_concurrency)
        self.published: set[str] = set()
        self.deadlettered = 0
        self.statuses: dict[int, int] = {}

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """One request on a new connection, as bytes through the HTTP protocol."""
        head = b"POST /webhooks/prod HTTP/1.1\r\nHost: bridge.example\r\n" + b"".join(
            f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items()
        )
        request = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        transport = RecordingTransport(tls=True)  # the URL IDaaS signs is https
        protocol: HttpProtocol = self.listener(ServerState(), self.loop)
        protocol.connection_made(transport)

        async def answered() -> tuple[int, dict[bytes, bytes], bytes]:
            protocol.data_received(request)
            while (answer := transport.answer()) is None:
                await asyncio.sleep(0.001)
            return answer

        status, _, answer_body = self.loop.run_until_complete(answered())
        protocol.connection_lost(None)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status, json.loads(answer_body)

    def report(self) -> dict[str, Any]:
        return {
            "statuses": self.statuses,
            "published": sorted(self.published),
            "deadlettered": self.deadlettered,
        }


def headers_for(kind: str, body: bytes, junk: str) -> dict[str, str]:
    if kind == "valid":
        return idaas_headers(TOKEN, URL, body)
    if kind == "sha512":
        return idaas_headers(TOKEN, URL, body, digest="sha-512")
    if kind == "wrong_token":
        return idaas_headers(TOKEN + "x", URL, body)
    if kind == "mangled_input":
        return idaas_headers(TOKEN, URL, body) | {"Signature-Input": junk}
    if kind == "random_headers":
        return {"Content-Digest": junk, "Signature-Input": junk[::-1], "Signature": f"sig=:{junk}:"}
    return {}


def fuzz(harness: Harness, examples: int, worker_seed: int) -> None:
    """Run `examples` generated deliveries; raises hypothesis's falsifying example on the first failure."""

    @seed(worker_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=bodies, kind=signing, junk=header_text)
    def one(body: bytes, kind: str, junk: str) -> None:
        status, answer = harness.post(body, headers_for(kind, body, junk))
        assert status < 500, (status, answer)
        authentic = kind in ("valid", "sha512")
        assert (status == 401) == (not authentic), (kind, status, answer)
        if authentic:
            assert status in (200, 202), answer
            if answer["status"] == "deadlettered":
                harness.deadlettered += 1
            else:
                harness.published.add(answer["id"])

    one()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="the broker's bootstrap servers")
    parser.add_argument("--topic-prefix", required=True, help="of the topics all workers publish to")
    parser.add_argument("--seed", type=int, required=True, help="hypothesis's seed for this worker")
    parser.add_argument("--examples", type=int, required=True, help="this worker's share of the examples")
    parser.add_argument("--workdir", type=Path, required=True, help="for its config file and spool")
    parser.add_argument("--report", type=Path, required=True, help="JSON file: statuses, ids, dead-letters")
    args = parser.parse_args()
    faulthandler.enable()  # the test stops a hung worker with SIGABRT: the tracebacks show where it hung
    topics = topic_names(args.topic_prefix)
    create_topics(args.bootstrap, list(topics.values()))  # existing ones are accepted: workers share them
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = {
        "IDAAS_BRIDGE_WEBHOOK_PROD_TOKENS": TOKEN,
        "IDAAS_BRIDGE_KAFKA__BOOTSTRAP_SERVERS": args.bootstrap,
        "IDAAS_BRIDGE_KAFKA_CLIENT_LINGER_MS": "0",
        "IDAAS_BRIDGE_SPOOL__PATH": str(args.workdir / "spool"),
        "IDAAS_BRIDGE_LOGGING__LEVEL": "WARNING",
        **{f"IDAAS_BRIDGE_KAFKA__TOPICS__{key.upper()}__NAME": name for key, name in topics.items()},
    }
    (args.workdir / "bridge.yaml").write_text("webhooks: [{name: prod}]\n")
    bridge = Bridge(load_settings(args.workdir / "bridge.yaml", env))
    app = create_app(bridge)
    loop = asyncio.new_event_loop()
    lifespan = bridge.lifespan(app)
    loop.run_until_complete(lifespan.__aenter__())
    harness = Harness(bridge, loop)
    try:
        fuzz(harness, args.examples, args.seed)
    finally:
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
    args.report.write_text(json.dumps(harness.report()))


if __name__ == "__main__":
    main()
