"""What each sub-command module provides to the entry point (bridge/cli/main.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bridge.config import Settings


@dataclass(frozen=True)
class Command:
    """A command module's `COMMAND`; its name and one-line summary are in bridge/cli/main.py's table, which
    imports the module only when the command is chosen."""

    #: The command's own --help text.
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    #: Runs with the validated settings; returns the exit code (bridge/cli/exits.py).
    run: Callable[[Settings, argparse.Namespace], int]


Number = TypeVar("Number", int, float)


def positive(kind: Callable[[str], Number]) -> Callable[[str], Number]:
    """An argparse type: a number above 0 (argparse turns the error into a usage error, exit 2)."""

    def parse(text: str) -> Number:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse
