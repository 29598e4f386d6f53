"""`idaas-bridge tail`: what reached Kafka, one line per event as it arrives, whatever the topic's format."""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from confluent_kafka import Consumer, KafkaError, Message
from rich.console import Console
from rich.markup import escape

from bridge.cli.command import Command
from bridge.cli.exits import EXIT_OK, CommandError
from bridge.cli.kafka_client import quiet
from bridge.config import Settings
from bridge.publish.kafka import client_config, new_client
from bridge.routing import DEADLETTER_SCHEMA

POLL_SECONDS: Final = 0.5
METADATA_TIMEOUT_SECONDS: Final = 10.0
OUTCOME_STYLES: Final = {"success": "green", "failure": "red"}
#: The record header that names the event type (bridge/routing.py); dead letters have none.
TYPE_HEADER: Final = "idaas-event-type"

Summary = dict[str, Any]


def _get(document: Mapping[str, Any], *path: str) -> Any:
    value: Any = document
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _epoch(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _native(value: Mapping[str, Any]) -> Summary:
    return {
        "time": value.get("occurred_at"),
        "type": value.get("type"),
        "outcome": value.get("outcome"),
        "subject": _get(value, "subject", "name") or _get(value, "subject", "id"),
        "source_ip": _get(value, "source", "ip"),
    }


def _ecs(value: Mapping[str, Any]) -> Summary:
    return {
        "time": value.get("@timestamp"),
        "type": _get(value, "event", "action"),
        "outcome": _get(value, "event", "outcome"),
        "subject": _get(value, "user", "name") or _get(value, "user", "id"),
        "source_ip": _get(value, "source", "ip"),
    }


def _ocsf(value: Mapping[str, Any]) -> Summary:
    millis = value.get("time")
    status = value.get("status")
    return {
        "time": _epoch(millis / 1000) if isinstance(millis, int | float) else None,
        "type": _get(value, "metadata", "event_code"),
        "outcome": status.lower() if isinstance(status, str) else None,
        "subject": _get(value, "user", "name") or _get(value, "user", "uid"),
        "source_ip": _get(value, "src_endpoint", "ip"),
    }


def _splunk_hec(value: Mapping[str, Any]) -> Summary:
    seconds = value.get("time")
    action = _get(value, "event", "action")
    return {
        "time": _epoch(seconds) if isinstance(seconds, int | float) else None,
        "type": _get(value, "fields", "idaas_event_type"),
        "outcome": action if action in OUTCOME_STYLES else None,
        "subject": _get(value, "event", "user") or _get(value, "event", "user_id"),
        "source_ip": _get(value, "event", "src"),
    }


def _deadletter(value: Mapping[str, Any]) -> Summary:
    return {
        "time": value.get("received_at"),
        "type": "deadletter",
        "outcome": value.get("reason"),
        "subject": value.get("webhook"),
        "source_ip": None,
    }


#: The value's reader by the record's `schema` header (each format's `schema`, bridge/formats/).
READERS: Final[dict[str, Callable[[Mapping[str, Any]], Summary]]] = {
    "idaas.event/": _native,
    "ecs/": _ecs,
    "ocsf/": _ocsf,
    "splunk-hec-event/": _splunk_hec,
    DEADLETTER_SCHEMA: _deadletter,
}


def summarize(message: Message) -> Summary:
    """The line's fields for one record: from its value, read by its schema header."""
    headers: dict[str, str] = {}
    raw = message.headers() or []
    for name, value in raw.items() if isinstance(raw, dict) else raw:
        if isinstance(value, bytes):
            headers[name] = value.decode(errors="replace")
    schema = headers.get("schema", "")
    reader = next((read for prefix, read in READERS.items() if schema.startswith(prefix)), None)
    try:
        value = orjson.loads(message.value() or b"")
    except orjson.JSONDecodeError:
        value = None
    fields: Summary = reader(value) if reader is not None and isinstance(value, dict) else {}
    fields["type"] = fields.get("type") or headers.get(TYPE_HEADER) or "?"
    return {
        **{key: fields.get(key) for key in ("time", "type", "outcome", "subject", "source_ip")},
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
    }


def render(line: Summary) -> str:
    """Rich markup for one event: outcome coloured, the rest aligned."""
    outcome = str(line["outcome"] or "-")
    style = OUTCOME_STYLES.get(outcome, "yellow" if line["type"] == "deadletter" else "")
    shown = f"[{style}]{escape(outcome[:10]):<10}[/{style}]" if style else f"{escape(outcome[:10]):<10}"
    return (
        f"[dim]{escape(str(line['time'] or '-'))}[/dim] [bold]{escape(str(line['type'])):<30}[/bold] {shown} "
        f"{escape(str(line['subject'] or '-')):<24} {escape(str(line['source_ip'] or '-')):<15} "
        f"[dim]{escape(line['topic'])}/{line['partition']}@{line['offset']}[/dim]"
    )


def _consumer(settings: Settings, topics: Sequence[str], from_beginning: bool) -> Consumer:
    consumer = new_client(
        Consumer,
        quiet(
            {
                **client_config(settings.kafka),
                # A throw-away group: tail never commits, so it never moves anybody's offsets.
                "group.id": f"idaas-bridge-tail-{uuid.uuid4().hex[:12]}",
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "enable.auto.commit": False,
            }
        ),
        settings.kafka,
    )
    existing = consumer.list_topics(timeout=METADATA_TIMEOUT_SECONDS).topics
    missing = [name for name in topics if name not in existing]
    if missing:
        consumer.close()
        raise CommandError(
            f"topic(s) {', '.join(missing)} do not exist on {settings.kafka.bootstrap_servers}",
            "create them (idaas-bridge topics) or name existing ones",
        )
    consumer.subscribe(list(topics))
    return consumer


def tail(settings: Settings, args: argparse.Namespace) -> int:
    topics = args.topics or list(dict.fromkeys(topic.name for topic in settings.kafka.topics.values()))
    wanted = set(args.type)
    console = Console(highlight=False, soft_wrap=True)
    consumer = _consumer(settings, topics, args.from_beginning)
    shown = 0
    deadline = time.monotonic() + args.timeout if args.timeout else None
    try:
        while args.limit is None or shown < args.limit:
            if deadline is not None and time.monotonic() >= deadline:
                break
            message = consumer.poll(POLL_SECONDS)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    console.print(f"[red]kafka: {escape(error.str())}[/red]")
                continue
            line = summarize(message)
            if wanted and line["type"] not in wanted:
                continue
            shown += 1
            if args.json:
                console.file.write(orjson.dumps(line).decode() + "\n")
                console.file.flush()
            else:
                console.print(render(line))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how tail is meant to end
    finally:
        consumer.close()
    return EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "topics", nargs="*", metavar="TOPIC", help="topics to read (default: every configured one)"
    )
    parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest record (default: only new ones)"
    )
    parser.add_argument(
        "--type", action="append", default=[], metavar="TYPE", help="only this event type (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--limit", type=int, help="stop after this many events")
    parser.add_argument("--timeout", type=float, help="stop after this many seconds")


COMMAND = Command(
    description=(
        "Consume the configured topics (or the TOPICs given) and print one line per event: time, type, "
        "outcome, subject, source IP and topic/partition@offset; coloured on a terminal, JSON lines with "
        "--json. Reads native, ECS, OCSF, Splunk HEC and dead-letter records. Never commits offsets."
    ),
    add_arguments=add_arguments,
    run=tail,
)
