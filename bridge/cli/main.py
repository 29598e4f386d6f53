"""The entry point: parse the command line, load the settings, run one command, map failures to exit codes.

Expected failures (configuration, Kafka, connections, TLS) end in one line on stderr that says what failed
and what to do, never in a traceback; the exit code tells which kind (bridge/cli/exits.py).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

from confluent_kafka import KafkaException

from bridge.cli.command import Command
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


@dataclass(frozen=True)
class Entry:
    """A command as `idaas-bridge --help` lists it, and the module (bridge/cli/<module>.py) whose `COMMAND`
    describes its arguments and runs it. The module is imported only when the command is chosen: the daemon
    (serve) then never loads what the operator's tools need (rich, the Administration API client), which
    every worker would otherwise carry."""

    name: str
    #: One line for `idaas-bridge --help`.
    summary: str
    module: str

    def load(self) -> Command:
        command: Command = importlib.import_module(f"bridge.cli.{self.module}").COMMAND
        return command


COMMANDS = (
    Entry("serve", "run the webhook receiver", "serve"),
    Entry(
        "check-config",
        "validate the configuration; with --connect, check Kafka, the topics, the spool and TLS",
        "check",
    ),
    Entry("topics", "create the configured Kafka topics that do not exist yet, or describe them", "topics"),
    Entry(
        "simulate", "deliver signed sample events as IDaaS does (timeouts, retries, auto-disable)", "simulate"
    ),
    Entry("tail", "print the events in the configured topics as they arrive (any format)", "tail"),
    Entry(
        "replay",
        "publish again dead letters (normalized anew), rejected records, or a dead pod's spool",
        "replay",
    ),
    Entry(
        "rejected",
        "list the records Kafka refused for good, kept in the spool directory, or replay them",
        "rejected",
    ),
    Entry(
        "webhooks",
        "list the configured webhooks as IDaaS sees them: enabled, disabled, expired, expiry",
        "webhooks",
    ),
    Entry(
        "backfill",
        "publish the events of a time window IDaaS never delivered, reconstructed from its audit log",
        "backfill",
    ),
)
EPILOG = (
    "exit codes: 0 ok; 1 the command's verdict is negative (a check failed, a simulated delivery failed, "
    "records still refused); 2 usage; 3 configuration; 4 runtime (Kafka unreachable, authentication, TLS, "
    "connection refused); 5 simulate: IDaaS would have disabled the webhook; 130 interrupted. "
    "See docs/cli.md."
)


def version_text() -> str:
    from bridge.publish.main_queue import client_versions

    bridge = metadata.version("idaas-siem-bridge")
    return f"{PROG} {bridge} (Python {platform.python_version()}, {client_versions()})"


class _VersionAction(argparse.Action):
    """--version, computed only when asked (it imports the Kafka client to ask its versions)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(version_text())
        parser.exit()


def chosen(argv: Sequence[str]) -> Entry | None:
    """The command the command line names: its first word that is not an option (the only options before
    the command, --help and --version, take no value), or None when that word names no command (argparse
    then reports the usage error)."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return next((entry for entry in COMMANDS if entry.name == word), None)


def build_parser(entry: Entry | None) -> argparse.ArgumentParser:
    """Every command listed; only `entry`'s module imported, for its description and arguments (argparse
    reads no other command's parser when `entry` is the command on the command line)."""
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
    for listed in COMMANDS:
        if listed is not entry:
            commands.add_parser(listed.name, help=listed.summary, epilog=EPILOG)
            continue
        command = listed.load()
        sub = commands.add_parser(
            listed.name, help=listed.summary, description=command.description, epilog=EPILOG
        )
        sub.add_argument("--config", help="YAML config file (default: $IDAAS_BRIDGE_CONFIG)")
        command.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    entry = chosen(argv)
    try:
        args = build_parser(entry).parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (argparse exits 2 = EXIT_USAGE)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    assert entry is not None and entry.name == args.command  # argparse ran the command chosen() found
    command = entry.load()
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
        print(f"{PROG} {entry.name}: {failure}", file=sys.stderr)
        return EXIT_RUNTIME
    except CommandError as exc:
        print(f"{PROG} {entry.name}: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print(f"{PROG} {entry.name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
