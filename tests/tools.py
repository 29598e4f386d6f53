"""The command-line tools `make tools` installs into .cache/tools/bin (Helm, promtool, Prometheus)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str, installer: str) -> str:
    """The tool's path; if missing, the test fails under CI (where it must exist) and skips elsewhere."""
    path = ROOT / ".cache/tools/bin" / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        message = f"{name} is not installed: run {installer}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found
