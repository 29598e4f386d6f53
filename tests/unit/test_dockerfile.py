"""deploy/Dockerfile, checked statically (CI has no Docker engine): stages, user, files, health, command."""

from __future__ import annotations

import ast
import http.server
import json
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest
import yaml

from bridge import cli
from bridge.config import env_name, load_settings

ROOT: Final = Path(__file__).resolve().parents[2]
DOCKERFILE: Final = ROOT / "deploy/Dockerfile"
CONFIG_PATH: Final = "/etc/idaas-bridge/bridge.yaml"
SPOOL_PATH: Final = "/var/lib/idaas-bridge/spool"
BUILD_TOOLS: Final = ("gcc", "g++", "make", "build-essential", "python3-dev", "libc6-dev", "curl", "wget")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form instruction (after any --flags), or fail."""
        text = re.sub(r"^(--\S+\s+)*", "", self.arguments)
        if self.keyword == "HEALTHCHECK":
            text = re.sub(r"^CMD\s+", "", text)
        parsed = json.loads(text)
        assert isinstance(parsed, list) and all(isinstance(item, str) for item in parsed)
        return parsed


@dataclass
class Stage:
    base: str
    name: str
    #: The FROM argument as written, before ARG substitution.
    source: str = ""
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages: comments dropped, `\\` continuations joined."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        if (pending + line).strip():
            logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.strip().partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            words = arguments.split()
            base = re.sub(r"\$\{(\w+)\}", lambda match: args[match.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base, name, words[0]))
        elif keyword == "ARG" and not stages:
            key, _, default = arguments.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, arguments))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))[1]


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_multi_stage_build_on_slim_python_3_11(stages: list[Stage]) -> None:
    args = parse(DOCKERFILE.read_text(encoding="utf-8"))[0]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"]), args["PYTHON_IMAGE"]
    assert len(stages) >= 2
    for index, stage in enumerate(stages):
        earlier = {previous.name for previous in stages[:index]}
        assert stage.source == "${PYTHON_IMAGE}" or stage.base in earlier, (stage.name, stage.source)
    copies = [item.arguments for item in stages[-1].all("COPY") if item.arguments.startswith("--from=")]
    assert any("/opt/idaas-bridge" in copy for copy in copies), (
        "the runtime takes the venv from the build stage"
    )
    assert stages[-1].source == "${PYTHON_IMAGE}", "the runtime starts again from the bare base"


def test_install_from_the_package_index_or_from_wheels_built_on_the_host(stages: list[Stage]) -> None:
    """The release build uses the package index (the default); `make image` passes wheels it built, so the
    build needs no network (deploy/image/build.sh)."""
    args = parse(DOCKERFILE.read_text(encoding="utf-8"))[0]
    assert args["INSTALL_FROM"] == "index"
    by_name = {stage.name: stage for stage in stages}
    build = by_name["build"]
    assert build.source == "install-${INSTALL_FROM}"
    index_runs = " ".join(item.arguments for item in by_name["install-index"].all("RUN"))
    assert "pip install -c constraints.txt ." in index_runs and "--no-index" not in index_runs
    wheels = by_name["install-wheels"]
    assert [item.arguments for item in wheels.all("COPY")] == ["--from=wheels . ./wheels"]
    wheels_runs = " ".join(item.arguments for item in wheels.all("RUN"))
    assert "pip install --no-index --find-links wheels -c constraints.txt idaas-siem-bridge" in wheels_runs
    assert by_name["install-index"].base == wheels.base == "venv"
    script = (ROOT / "deploy/image/build.sh").read_text(encoding="utf-8")
    assert "--build-arg INSTALL_FROM=wheels" in script and '--build-context wheels="$cache/wheels"' in script
    assert "--format docker" in script, "the OCI image format drops HEALTHCHECK"


def test_no_credentials_or_certificates_are_copied_in(stages: list[Stage]) -> None:
    secret_files = re.compile(r"pip\.conf|\.netrc|\.pypirc|\.pem|\.crt|\.key|certs?/")
    for stage in stages:
        for item in stage.all("COPY") + stage.all("ADD"):
            assert not secret_files.search(item.arguments), item
        for item in stage.all("ARG") + stage.all("ENV"):
            assert not re.search(r"TOKEN|PASSWORD|SECRET|INDEX_URL|CERT", item.arguments), item


def test_runtime_stage_installs_no_build_tools_and_drops_pip(final: Stage) -> None:
    runs = " ".join(item.arguments for item in final.all("RUN"))
    assert "apt-get install" not in runs and "pip install" not in runs
    for tool in BUILD_TOOLS:
        assert not re.search(rf"(?<![\w-]){re.escape(tool)}(?![\w-])", runs), tool
    assert re.search(r"pip uninstall --yes .*\bpip\b", runs)


def test_build_stage_sources_exist(stages: list[Stage]) -> None:
    for stage in stages:
        for item in stage.all("COPY"):
            if item.arguments.startswith("--from="):
                continue
            *sources, _ = shlex.split(item.arguments)
            for source in sources:
                if "*" not in source:
                    assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_runs_as_uid_10001_not_root(final: Stage) -> None:
    assert re.fullmatch(r"10001(:10001)?", final.last("USER").arguments)
    runs = " ".join(item.arguments for item in final.all("RUN"))
    assert "--uid 10001" in runs and "--gid 10001" in runs
    keywords = [item.keyword for item in final.instructions]
    assert keywords.index("USER") > max(i for i, keyword in enumerate(keywords) if keyword in ("RUN", "COPY"))


def test_read_only_root_filesystem_friendly(final: Stage) -> None:
    assert final.last("VOLUME").exec_form() == [SPOOL_PATH]
    runs = " ".join(item.arguments for item in final.all("RUN"))
    assert re.search(rf"install -d -o 10001 -g 10001 .*{re.escape(SPOOL_PATH)}", runs), "spool owned by 10001"
    env = " ".join(item.arguments for item in final.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert f"IDAAS_BRIDGE_CONFIG={CONFIG_PATH}" in env
    assert final.last("EXPOSE").arguments.split() == ["8080", "9464"]


def test_entrypoint_and_cmd_are_exec_form_so_sigterm_reaches_the_bridge(final: Stage) -> None:
    assert final.last("ENTRYPOINT").exec_form() == ["idaas-bridge"]
    assert final.last("CMD").exec_form() == ["serve", "--config", CONFIG_PATH]
    assert final.last("STOPSIGNAL").arguments == "SIGTERM"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["idaas-bridge"] == "bridge.cli:main"


def _e2e_command() -> list[str]:
    """The argv tests/e2e/harness.py starts the daemon with: [<expr>, "serve", "--config", <expr>]."""
    tree = ast.parse((ROOT / "tests/e2e/harness.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "Popen"
            and node.args
            and isinstance(node.args[0], ast.List)
        ):
            return [
                element.value
                if isinstance(element, ast.Constant) and isinstance(element.value, str)
                else "<expr>"
                for element in node.args[0].elts
            ]
    raise AssertionError("tests/e2e/harness.py starts no subprocess.Popen([...])")


def test_cmd_is_the_command_the_e2e_tests_run(final: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    command = final.last("ENTRYPOINT").exec_form() + final.last("CMD").exec_form()
    e2e = _e2e_command()
    assert e2e[0] == "<expr>" and e2e[1:3] == ["serve", "--config"] and len(e2e) == 4
    assert command[:3] == ["idaas-bridge", *e2e[1:3]] and len(command) == 4
    # The CLI accepts exactly these arguments: it gets as far as reading the (absent) config file.
    assert cli.main(command[1:]) == cli.EXIT_CONFIG
    assert f"config file {CONFIG_PATH!r} does not exist" in capsys.readouterr().err


def test_image_default_config_is_valid_and_listens_on_8080(stages: list[Stage], tmp_path: Path) -> None:
    run = " ".join(item.arguments for stage in stages for item in stage.all("RUN"))
    match = re.search(r"sed -i 's/(?P<pattern>[^/]*)/(?P<replacement>[^/]*)/' bridge\.yaml", run)
    assert match, "the build stage rewrites the port of config/bridge.yaml with sed"
    pattern = match["pattern"].replace("^", "(?m)^", 1)
    config, count = re.subn(pattern, match["replacement"], (ROOT / "config/bridge.yaml").read_text())
    assert count == 1, "config/bridge.yaml no longer has the `  port: 8443` line the Dockerfile rewrites"
    path = tmp_path / "bridge.yaml"
    path.write_text(config)
    tokens = {env_name(hook["name"]): "image-test-token-0123" for hook in yaml.safe_load(config)["webhooks"]}
    settings = load_settings(path, environ=tokens)
    assert settings.server.port == 8080 and not settings.server.tls
    assert settings.server.ops_port == 9464, "the HEALTHCHECK and EXPOSE use the operations port 9464"
    assert settings.spool.path == SPOOL_PATH


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_one_liner_probes_healthz(
    final: Stage, health_server: http.server.HTTPServer, status: int, healthy: bool
) -> None:
    healthcheck = final.last("HEALTHCHECK")
    assert re.search(r"--interval=\S+ .*--timeout=\S+", healthcheck.arguments)
    argv = healthcheck.exec_form()
    assert argv[:2] == ["python", "-c"] and len(argv) == 3
    assert "http://127.0.0.1:9464/healthz" in argv[2], "the probes live on the operations port"
    _Health.status = status
    port = health_server.server_address[1]
    code = argv[2].replace("127.0.0.1:9464", f"127.0.0.1:{port}")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert (result.returncode == 0) == healthy, result.stderr
