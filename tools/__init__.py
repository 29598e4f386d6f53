"""Generators for files the project commits: monitoring (alerts, dashboard), the chart's values schema, the
metrics and configuration references. Each writes its files with `make <target>`; a test checks the
committed files equal what the generator writes, so the generator is the one place to edit."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A generator's command line: its module docstring as --help."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def write_files(files: Mapping[Path, str], root: Path = ROOT) -> None:
    """Write repository-relative path -> content under `root`, saying what was written."""
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")


def run(doc: str | None, files: Mapping[Path, str], argv: Sequence[str] | None) -> None:
    """The whole command line of a generator without options."""
    parser(doc).parse_args(argv)
    write_files(files)
