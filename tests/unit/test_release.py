"""The release workflow, the chart and pyproject.toml agree: what the workflow publishes is what the chart
installs by default."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

ROOT: Final = Path(__file__).resolve().parents[2]
CHART: Final = ROOT / "helm/idaas-siem-bridge"
PROJECT: Final = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    return document


def _steps(job: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = _workflow()["jobs"][job]["steps"]
    return steps


def _uses(job: str, action: str) -> dict[str, Any]:
    (step,) = [step for step in _steps(job) if step.get("uses", "").startswith(f"{action}@")]
    return step


def test_the_chart_installs_the_image_the_workflow_publishes_at_the_project_version() -> None:
    owner_and_name = urlsplit(PROJECT["urls"]["Repository"]).path.strip("/").lower()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert values["image"]["repository"] == f"ghcr.io/{owner_and_name}"
    assert values["image"]["tag"] == ""  # the chart's appVersion
    assert chart["appVersion"] == PROJECT["version"]


def test_a_version_tag_runs_the_whole_suite_before_anything_is_published() -> None:
    workflow = _workflow()
    assert workflow[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as true
    assert any(step.get("run") == ".ci/run" for step in _steps("test"))  # .ci/run is `make test`
    # the machine the project's scripts expect: Debian as root, privileged for podman
    assert workflow["jobs"]["test"]["container"] == {"image": "debian:bookworm", "options": "--privileged"}
    assert workflow["jobs"]["image"]["needs"] == "test"
    assert workflow["jobs"]["chart"]["needs"] == "image"


def test_the_image_is_multi_arch_from_the_dockerfile_with_provenance() -> None:
    build = _uses("image", "docker/build-push-action")["with"]
    assert build["file"] == "deploy/Dockerfile" and build["push"] is True
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["provenance"] == "mode=max"
    attest = _uses("image", "actions/attest-build-provenance")["with"]
    assert attest["push-to-registry"] is True
    assert _workflow()["jobs"]["image"]["permissions"]["id-token"] == "write"


def test_the_chart_is_pushed_as_an_oci_artifact_with_the_tested_helm() -> None:
    script = "\n".join(step.get("run", "") for step in _steps("chart"))
    assert "deploy/tools/install-helm.sh" in script
    assert '"$HELM" push dist/idaas-siem-bridge-*.tgz "oci://ghcr.io/' in script


def test_the_license_file_is_the_one_pyproject_declares() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert PROJECT["license"] == "Apache-2.0"
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole text, not a notice
