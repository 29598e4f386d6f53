"""`idaas-bridge check-config [--connect]`: validate the configuration, print it masked."""

from __future__ import annotations

import argparse
import json

from bridge.cli.command import Command
from bridge.config import Settings, describe


def run(settings: Settings, args: argparse.Namespace) -> int:
    print(json.dumps(describe(settings), indent=2))
    return 0


COMMAND = Command(
    name="check-config",
    summary="validate the configuration and print it with secrets masked",
    description="Validate the configuration and print the effective settings with secrets masked.",
    add_arguments=lambda parser: None,
    run=run,
)
