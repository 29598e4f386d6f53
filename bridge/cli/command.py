"""What each sub-command module provides to the entry point (bridge/cli/main.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from bridge.config import Settings


@dataclass(frozen=True)
class Command:
    name: str
    #: One line for `idaas-bridge --help`; `description` is the command's own --help text.
    summary: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    #: Runs with the validated settings; returns the exit code (bridge/cli/exits.py).
    run: Callable[[Settings, argparse.Namespace], int]
