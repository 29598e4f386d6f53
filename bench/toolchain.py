"""The benchmark's outside tools, installed on first use and cached in .cache/bench/bin so reruns are fast:
wrk from Debian, vegeta with `go install`, and the OpenTelemetry Collector peer built from bench/peer."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
BIN: Final = ROOT / ".cache" / "bench" / "bin"
PEER_MODULE: Final = ROOT / "bench" / "peer"
VEGETA_MODULE: Final = "github.com/tsenart/vegeta/v12@v12.13.0"


def _run(command: list[str], **kwargs: object) -> None:
    print("  $", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def wrk() -> Path:
    found = shutil.which("wrk")
    if found is None:
        _run(["apt-get", "install", "-y", "wrk"], stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    assert found is not None, "apt-get installed no wrk"
    return Path(found)


def vegeta() -> Path:
    target = BIN / "vegeta"
    if not target.exists():
        _run(["go", "install", VEGETA_MODULE], env=os.environ | {"GOBIN": str(BIN)})
    return target


def peer() -> Path:
    """The collector binary; rebuilt when bench/peer's sources are newer than it."""
    target = BIN / "otelcol-peer"
    sources = [PEER_MODULE / name for name in ("go.mod", "go.sum", "main.go")]
    if not target.exists() or max(s.stat().st_mtime for s in sources) > target.stat().st_mtime:
        _run(["go", "build", "-trimpath", "-o", str(target), "."], cwd=PEER_MODULE)
    return target
