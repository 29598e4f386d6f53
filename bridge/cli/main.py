"""The entry point: parse the command line, load the settings, run one command, map failures to exit codes.

Expected failures (configuration, Kafka, connections, TLS) end in one line on stderr that says what failed
and what to do, never in a traceback; the exit code tells which kind (bridge/cli/exits.py).
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from importlib import metadata

from confluent_kafka import KafkaException

from bridge.cli import backfill, check, rejected, replay, serve, simulate, tail, topics, webhooks
from bridge.cli.exits import (
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_RUNTIME,
    EXIT_USAGE,
    CommandError,
)
from bridge.cli.kafka_client import ERRORS
from bridge.config import ConfigError, load_settings

PROG = "idaas-bridge"
COMMANDS = (
    serve.COMMAND,
    check.COMMAND,
    topics.COMMAND,
    simulate.COMMAND,
    tail.COMMAND,
    replay.COMMAND,
    rejected.COMMAND,
    webhooks.COMMAND,
    backfill.COMMAND,
)
EPILOG = (
    "exit codes: 0 ok; 1 the command's verdict is negative (a check failed, a simulated delivery failed, "
    "records still refused); 2 usage; 3 configuration; 4 runtime (Kafka unreachable, authentication, TLS, "
    "connection refused); 5 simulate: IDaaS would have disabled the webhook; 130 interrupted. "
    "See docs/cli.md."
)


def version_text() -> str:
    import confluent_kafka

    librdkafka = confluent_kafka.libversion()[0]
    return (
        f"{PROG} {metadata.version('idaas-siem-bridge')} (Python {platform.python_version()}, "
        f"confluent-kafka {metadata.version('confluent-kafka')}, librdkafka {librdkafka})"
    )


class _VersionAction(argparse.Action):
    """--version, computed only when asked (it imports the Kafka client to ask its versions)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Entrust IDaaS webhooks → Kafka, and the tools to operate it.",
        epilog=EPILOG,
    )
    parser.add_argument(
        "--version",
        nargs=0,
        action=_VersionAction,
        help="print the versions of the bridge, Python and Kafka client",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(
            command.name, help=command.summary, description=command.description, epilog=EPILOG
        )
        sub.add_argument("--config", help="YAML config file (default: $IDAAS_BRIDGE_CONFIG)")
        command.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (argparse exits 2 = EXIT_USAGE)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command = next(command for command in COMMANDS if command.name == args.command)
    bootstrap = "(not loaded)"
    try:
        settings = load_settings(args.config)
        bootstrap = settings.kafka.bootstrap_servers
        return command.run(settings, args)
    except ConfigError as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KafkaException as exc:
        failure = ERRORS.explain(exc, bootstrap)
        print(f"{PROG} {command.name}: {failure}", file=sys.stderr)
        return EXIT_RUNTIME
    except CommandError as exc:
        print(f"{PROG} {command.name}: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print(f"{PROG} {command.name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
