"""The committed alert rules and dashboards are what tools/monitoring.py writes (`make monitoring`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import monitoring


@pytest.mark.parametrize(("path", "text"), sorted(monitoring.generated_files().items()))
def test_committed_file_equals_the_generator_output(path: Path, text: str) -> None:
    committed = (monitoring.ROOT / path).read_text(encoding="utf-8")
    assert committed == text, f"{path} differs from tools/monitoring.py's output: run `make monitoring`"


def test_generator_writes_every_file_under_the_given_root(tmp_path: Path) -> None:
    monitoring.main(["--root", str(tmp_path), "--runbook-url", "https://runbooks.example.com/bridge"])
    alerts = (tmp_path / monitoring.ALERTS).read_text()
    assert "https://runbooks.example.com/bridge#idaasbridgedown" in alerts
    assert (tmp_path / monitoring.DASHBOARD).read_text() == (
        tmp_path / monitoring.CHART_DASHBOARD
    ).read_text()
