"""The stack's two ceilings: what Starlette/uvicorn and confluent-kafka cost with none of the bridge's work.

    python -m bench.ceilings http  --port P                          answer 200 to every POST
    python -m bench.ceilings kafka --port P --bootstrap B --topic T  produce the body, answer 200 after
                                                                      the broker's acknowledgement

Both run under uvicorn with the bridge's server choices (uvloop, httptools, no access log), and the Kafka
ceiling with the bridge's producer settings, so the gap to the bridge is the bridge's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import threading

import uvicorn
from confluent_kafka import KafkaError, Message, Producer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[KafkaError | None] = loop.create_future()

        def report(error: KafkaError | None, message: Message) -> None:
            loop.call_soon_threadsafe(done.set_result, error)

        self._producer.produce(self._topic, value=body, on_delivery=report)
        error = await done
        if error is not None:
            return Response(str(error).encode(), status_code=503)
        return Response(OK_BODY, media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("http", "kafka"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    args = parser.parse_args()
    handler = answer_ok
    if args.kind == "kafka":
        handler = KafkaCeiling(args.bootstrap, args.topic).handle
    app = Starlette(routes=[Route("/webhooks/{name}", handler, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False, server_header=False)


if __name__ == "__main__":
    main()
