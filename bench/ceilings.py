"""The stacks' ceilings: what the HTTP layer and confluent-kafka cost with none of the bridge's work.

    python -m bench.ceilings http  --port P                          answer 200 to every POST
    python -m bench.ceilings kafka --port P --bootstrap B --topic T  produce the body, answer 200 after
                                                                      the broker's acknowledgement
    python -m bench.ceilings protocol-kafka --port P --bootstrap B --topic T
                                                                      the same behind the bridge's own HTTP
                                                                      protocol instead of Starlette/uvicorn

`http` and `kafka` run under uvicorn with its server choices (uvloop, httptools, no access log): the stack the
bridge served deliveries with until its own protocol replaced uvicorn's (docs/benchmarks.md, fourth round).
`protocol-kafka` serves with bridge.http_protocol on uvloop: the floor of the bridge's stack today. Every
Kafka ceiling produces with the bridge's producer settings, so the gap to the bridge is the bridge's own
work.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from typing import Final, cast

import uvicorn
import uvloop
from confluent_kafka import KafkaError, Message, Producer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.server import ServerState

from bridge.config import ServerSettings
from bridge.http_message import Answer, json_answer
from bridge.http_message import Request as BridgeRequest
from bridge.http_protocol import http_listener
from bridge.publish.kafka import DEFAULT_PRODUCER_CONFIG, REQUIRED_PRODUCER_CONFIG

OK_BODY = b'{"status":"ok"}'


async def answer_ok(request: Request) -> Response:
    await request.body()
    return Response(OK_BODY, media_type="application/json")


class KafkaCeiling:
    """Produce each body and answer once librdkafka reports it delivered (acks=all), as the bridge does."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        config = {**DEFAULT_PRODUCER_CONFIG, **REQUIRED_PRODUCER_CONFIG, "bootstrap.servers": bootstrap}
        self._producer = Producer(config)
        self._topic = topic
        self._stop = threading.Event()
        threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    async def produce(self, body: bytes) -> KafkaError | None:
        """Produce `body`; its delivery report's error once the broker answered."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[KafkaError | None] = loop.create_future()

        def report(error: KafkaError | None, message: Message) -> None:
            loop.call_soon_threadsafe(done.set_result, error)

        self._producer.produce(self._topic, value=body, on_delivery=report)
        return await done

    async def handle(self, request: Request) -> Response:
        error = await self.produce(await request.body())
        if error is not None:
            return Response(str(error).encode(), status_code=503)
        return Response(OK_BODY, media_type="application/json")


MAX_BODY_BYTES: Final = 1024 * 1024


class ProtocolKafkaCeiling:
    """The Kafka ceiling as an endpoint of the bridge's HTTP protocol (bridge/http_message.Endpoint)."""

    headers = frozenset({b"content-length"})

    def __init__(self, kafka: KafkaCeiling) -> None:
        self._kafka = kafka

    async def handle(self, request: BridgeRequest) -> Answer:
        error = await self._kafka.produce(await request.body(MAX_BODY_BYTES))
        if error is not None:
            return json_answer(503, {"error": str(error)})
        return Answer(200, OK_BODY)


async def serve_protocol(endpoint: ProtocolKafkaCeiling, port: int) -> None:
    loop = asyncio.get_running_loop()
    listener = http_listener(ServerSettings(), endpoint, limit=10_000)
    state = ServerState()
    server = await loop.create_server(
        lambda: cast(asyncio.BaseProtocol, listener(state, loop)), "127.0.0.1", port, backlog=2048
    )
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("http", "kafka", "protocol-kafka"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    args = parser.parse_args()
    if args.kind == "protocol-kafka":
        uvloop.install()  # the event loop uvicorn runs the bridge on
        asyncio.run(serve_protocol(ProtocolKafkaCeiling(KafkaCeiling(args.bootstrap, args.topic)), args.port))
        return
    handler = answer_ok
    if args.kind == "kafka":
        handler = KafkaCeiling(args.bootstrap, args.topic).handle
    app = Starlette(routes=[Route("/webhooks/{name}", handler, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False, server_header=False)


if __name__ == "__main__":
    main()
