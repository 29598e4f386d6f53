"""`idaas-bridge rejected [--replay]`: records Kafka refused for good, kept beside the spool."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from bridge.cli.command import Command
from bridge.cli.exits import EXIT_OK
from bridge.cli.replay import replay_rejected
from bridge.config import Settings
from bridge.publish.rejected import RejectedRecords


def rejected(settings: Settings, args: argparse.Namespace) -> int:
    """List the records Kafka refused for good; --replay is `idaas-bridge replay rejected`."""
    if args.replay:
        return asyncio.run(replay_rejected(settings, dry_run=False))
    store = RejectedRecords(Path(settings.spool.path))
    kept = store.read()
    for entry in kept:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.rejected_at))
        print(f"{when} {entry.record.topic} {len(entry.record.value)} bytes: {entry.detail}")
    print(f"{len(kept)} rejected record(s) in {store.path}")
    return EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--replay",
        action="store_true",
        help="publish them again; keep only those still refused (= replay rejected)",
    )


COMMAND = Command(
    description="List the records Kafka refused for good (rejected.jsonl in the spool directory).",
    add_arguments=add_arguments,
    run=rejected,
)
