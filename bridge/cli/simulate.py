"""`idaas-bridge simulate`: signed sample deliveries, sent as IDaaS sends them."""

from __future__ import annotations

import argparse
import http.client
import ssl
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import orjson

from bridge import auth
from bridge.cli.command import Command
from bridge.config import ConfigError, Settings
from bridge.events.samples import sample_deliveries


def simulate(settings: Settings, url: str, webhook: str, cafile: str | None, types: Sequence[str]) -> int:
    """Sign and POST one sample delivery per type, exactly as IDaaS would, and print each answer."""
    hook = settings.webhook(webhook)
    if hook is None:
        raise ConfigError(
            f"--webhook {webhook!r} is not configured (configured: {[h.name for h in settings.webhooks]})"
        )
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None
    failures = 0
    for sample in sample_deliveries():
        if types and sample["type"] not in types:
            continue
        body = orjson.dumps({**sample, "id": f"sim-{time.time_ns()}"})
        headers = auth.sign(hook.tokens[0], "POST", hook.public_url or url, body, int(time.time()))
        connection: http.client.HTTPConnection = (
            http.client.HTTPSConnection(parts.netloc, context=context, timeout=5)
            if context is not None
            else http.client.HTTPConnection(parts.netloc, timeout=5)
        )
        connection.request("POST", parts.path or "/", body=body, headers=headers)
        answer = connection.getresponse()
        text = answer.read().decode()
        connection.close()
        failures += answer.status >= 300
        print(f"{sample['type']:<28} {answer.status} {text}")
    return 1 if failures else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="e.g. https://127.0.0.1:8443/webhooks/dev")
    parser.add_argument("--webhook", required=True, help="configured webhook name whose token signs")
    parser.add_argument("--cafile", help="CA bundle to verify the bridge's certificate")
    parser.add_argument("--type", action="append", default=[], help="only this event type (repeatable)")


COMMAND = Command(
    name="simulate",
    summary="send one signed sample delivery of each event type to a running bridge",
    description="Send signed sample deliveries to a running bridge.",
    add_arguments=add_arguments,
    run=lambda settings, args: simulate(settings, args.url, args.webhook, args.cafile, args.type),
)
