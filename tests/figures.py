"""Figures the fault and fuzz tests measure, shown at the end of every run (pytest captures test output).

Loaded from tests/conftest.py as a plugin; tests call `record_figure`.
"""

from __future__ import annotations

import pytest

FIGURES: list[str] = []


def record_figure(line: str) -> None:
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("measured figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
