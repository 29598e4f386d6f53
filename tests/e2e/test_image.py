"""The container image built from deploy/Dockerfile, run as users and the Helm chart run it (with podman).

The image under test is BRIDGE_TEST_IMAGE when set (`make test` passes the one `make image` just built; a
release job can pass a pushed image), otherwise deploy/image/build.sh builds it, which costs seconds when
nothing changed. Skipped only where podman cannot run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from hashlib import sha256
from pathlib import Path
from typing import Final

import orjson
import pytest

from bridge.events.samples import sample_deliveries
from bridge.publish.spool import Spool
from tests import compiled_build
from tests.e2e.container import (
    BUILD,
    CONFIG_PATH,
    SPOOL_PATH,
    ContainerBridge,
    podman,
    podman_unavailable,
    spool_directory,
)
from tests.e2e.harness import ROOT, consume_all, metric_value, signed_post
from tests.e2e.load import run_load
from tests.kafka_broker import LocalKafka, create_topics

pytestmark = pytest.mark.kafka

#: Names of programs that compile or link; none may be in the image.
COMPILERS: Final = re.compile(r"(gcc|g\+\+|cc|c\+\+|cpp|clang|clang\+\+|tcc|ld|as|make)(-[\d.]+)?")
#: Files that hold credentials for package indexes, registries or git.
CREDENTIAL_FILES: Final = {"pip.conf", "pip.ini", ".pypirc", ".netrc", ".git-credentials", "auth.json"}
#: A PEM private key, with its key material.
PEM_PRIVATE_KEY: Final = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s+[A-Za-z0-9+/=\s]{64,}-----END")
PEM_CERTIFICATE: Final = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)\s+-----END CERTIFICATE-----", re.S)


@pytest.fixture(scope="module")
def image() -> str:
    reason = podman_unavailable()
    if reason:
        pytest.skip(reason)
    given = os.environ.get("BRIDGE_TEST_IMAGE")
    if given:
        return given
    built = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=1200, check=False)
    assert built.returncode == 0, f"deploy/image/build.sh failed:\n{built.stderr}"
    return (ROOT / ".cache/image/image-id").read_text().strip()


@pytest.fixture
def volume(image: str) -> Iterator[str]:
    name = f"idaas-bridge-test-spool-{uuid.uuid4().hex[:10]}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "--force", name)


@pytest.fixture
def run_container(
    image: str, volume: str, tmp_path: Path, topic_prefix: str
) -> Iterator[Callable[..., ContainerBridge]]:
    """Start the image against a broker, with fresh topics; every container is removed afterwards."""
    started: list[ContainerBridge] = []

    def run(bootstrap: str, **overrides: object) -> ContainerBridge:
        container = ContainerBridge(
            workdir=tmp_path / f"container-{len(started)}",
            bootstrap=bootstrap,
            topic_prefix=topic_prefix,
            tls=False,
            overrides=dict(overrides),
            image=image,
            volume=volume,
        )
        create_topics(bootstrap, list(container.topics.values()))
        started.append(container)
        container.start()
        return container

    yield run
    for container in started:
        container.remove()


@pytest.fixture
def bridge(run_container: Callable[..., ContainerBridge], kafka_bootstrap: str) -> ContainerBridge:
    return run_container(kafka_bootstrap)


def test_runs_as_uid_10001_and_writes_nothing_but_the_spool_and_tmp(bridge: ContainerBridge) -> None:
    status = bridge.exec("cat", "/proc/1/status").stdout
    assert re.search(r"^Uid:\s+10001\s+10001\s+10001\s+10001$", status, re.M), status
    assert re.search(r"^Gid:\s+10001\s+10001\s+10001\s+10001$", status, re.M), status
    # PID 1 is the entrypoint script's interpreter, with the image's command: SIGTERM reaches the bridge.
    argv = bridge.exec("cat", "/proc/1/cmdline").stdout.rstrip("\0").split("\0")
    assert argv[-4:] == ["/opt/idaas-bridge/bin/idaas-bridge", "serve", "--config", CONFIG_PATH], argv
    # Every directory the bridge's user could create a file in (access(2) also answers EROFS for the
    # read-only root). /proc, /sys and /dev are the kernel's and the runtime's, not the image's.
    walk = (
        "import os, json; print(json.dumps(sorted(d for d, _, _ in os.walk('/') "
        "if not d.startswith(('/proc', '/sys', '/dev')) and os.access(d, os.W_OK))))"
    )
    result = bridge.exec("python", "-c", walk)
    assert result.returncode == 0, result.stderr
    writable = json.loads(result.stdout)
    assert [d for d in writable if not d.startswith((SPOOL_PATH, "/tmp"))] == []
    assert SPOOL_PATH in writable and "/tmp" in writable
    # And really: a write next to the code or the config fails.
    for path in ("/opt/idaas-bridge/x", "/etc/idaas-bridge/x", "/var/lib/idaas-bridge/x"):
        denied = bridge.exec("python", "-c", f"open({path!r}, 'w')")
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr, (path, denied.stderr)


def test_a_signed_delivery_of_each_of_the_16_types_reaches_kafka(bridge: ContainerBridge) -> None:
    samples = sample_deliveries()
    assert len(samples) == 16
    for sample in samples:
        answer = signed_post(bridge, orjson.dumps(sample))
        assert answer.status_code == 200, (sample["type"], answer.text)
        assert answer.json() == {"id": sample["id"], "status": "published"}
    messages = consume_all(bridge.bootstrap, bridge.topics.values(), expected=len(samples))
    records = [json.loads(message.value()) for message in messages]
    assert sorted((r["id"], r["type"]) for r in records) == sorted((s["id"], s["type"]) for s in samples)
    assert metric_value(bridge.metrics(), "idaas_bridge_spool_records") == 0


def test_the_image_healthcheck_passes(bridge: ContainerBridge, image: str) -> None:
    """podman runs the image's HEALTHCHECK in the container (the port pointed at the container's; see
    ContainerBridge.health_command)."""
    healthcheck = json.loads(podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image))
    assert healthcheck["Test"][0] == "CMD" and "/healthz" in " ".join(healthcheck["Test"]), healthcheck
    assert healthcheck["Interval"] > 0 and healthcheck["Timeout"] > 0, healthcheck
    result = podman("healthcheck", "run", bridge.name, check=False)
    assert result.strip() in ("", "healthy"), result
    assert podman("inspect", "--format", "{{.State.Health.Status}}", bridge.name).strip() == "healthy"


def test_podman_stop_drains_a_spooled_backlog_before_exit(
    run_container: Callable[..., ContainerBridge], volume: str
) -> None:
    """SIGTERM from `podman stop` reaches the bridge (PID 1), which drains what waits in the spool while
    Kafka answers and exits before the chart's grace period ends. The backlog is made by hanging a broker
    of this test's own (SIGSTOP) while the deliveries arrive in spool_first mode."""
    LocalKafka.private("image").wipe()
    broker = LocalKafka.private("image").started()
    try:
        bridge = run_container(broker.bootstrap, **{"spool.ack_mode": "spool_first"})
        broker.pause()
        try:
            load = asyncio.run(run_load(bridge.base_url, bridge.tokens["prod"], total=2000, workers=16))
            assert load.count(202) == 2000, {a.status for a in load.answers}
            backlog = metric_value(bridge.metrics(), "idaas_bridge_spool_records")
            assert backlog > 0
        finally:
            broker.resume()
        started = time.monotonic()
        exit_code = bridge.stop()
        stopped_in = time.monotonic() - started
        assert exit_code in (0, 143), (exit_code, bridge.log_tail())  # 137: SIGKILL at the end of the grace
        assert stopped_in < bridge.runtime.stop_timeout
        stopped = [r for r in bridge.log_records() if r.get("message") == "bridge stopped"]
        assert stopped and stopped[-1]["spooled_records_left"] == 0, bridge.log_tail()
        messages = consume_all(broker.bootstrap, bridge.topics.values(), expected=2000, timeout=60)
        assert {json.loads(m.value())["id"] for m in messages} >= load.accepted
    finally:
        broker.wipe()
    assert asyncio.run(records_a_next_start_would_drain(spool_directory(volume))) == 0


async def records_a_next_start_would_drain(directory: Path) -> int:
    """Open the spool volume as the bridge's next start would, and count what it finds."""
    spool = Spool(directory, max_bytes=1 << 30, segment_bytes=1 << 26)
    await spool.open()
    try:
        return spool.pending_records
    finally:
        await spool.close(timeout=10)


@pytest.fixture(scope="module")
def image_files(image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every regular file of the image's filesystem, by path."""
    exported = tmp_path_factory.mktemp("image") / "filesystem.tar"
    container = podman("create", image).strip()
    try:
        podman("export", "--output", str(exported), container)
    finally:
        podman("rm", "--volumes", container, check=False)
    files: dict[str, bytes] = {}
    with tarfile.open(exported) as archive:
        for member in archive:
            extracted = archive.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files["/" + member.name.removeprefix("./")] = extracted.read()
    exported.unlink()
    return files


def test_the_image_holds_no_pip_no_compiler_no_tests_and_no_secret(
    image: str, image_files: dict[str, bytes]
) -> None:
    paths = list(image_files)
    assert "/opt/idaas-bridge/bin/idaas-bridge" in paths and len(paths) > 1000
    assert [
        p for p in paths if re.search(r"/(pip|setuptools)(-[^/]*)?(/|\.whl$|\.dist-info/)|/bin/pip", p)
    ] == []
    assert [p for p in paths if re.search(r"/s?bin/", p) and COMPILERS.fullmatch(p.rsplit("/", 1)[1])] == []
    assert [p for p in paths if p.endswith("/Python.h")] == [], "C headers for building extensions"
    # None of this repository's test files (by content: the names are common), no installed `tests`
    # package, no pytest configuration, nothing of the build stage's /src.
    ours = {sha256(p.read_bytes()).digest() for p in (ROOT / "tests").rglob("*") if p.is_file()}
    ours.discard(sha256(b"").digest())
    assert [p for p, data in image_files.items() if sha256(data).digest() in ours] == []
    assert [p for p in paths if re.search(r"/site-packages/tests/|/conftest\.py$|^/src/", p)] == []
    # No credentials, no private key, no certificate authority of this machine.
    assert [p for p in paths if p.rsplit("/", 1)[1] in CREDENTIAL_FILES] == []
    # Compiled libraries are left out: librdkafka and GnuTLS embed the published keys of their self-tests.
    keys = [p for p, d in image_files.items() if not d.startswith(b"\x7fELF") and PEM_PRIVATE_KEY.search(d)]
    assert keys == []
    bundle = set(PEM_CERTIFICATE.findall(image_files["/etc/ssl/certs/ca-certificates.crt"]))
    debian = {
        cert
        for path, data in image_files.items()
        if path.startswith("/usr/share/ca-certificates/")
        for cert in PEM_CERTIFICATE.findall(data)
    }
    assert bundle and bundle <= debian, "the CA bundle holds certificates Debian's ca-certificates lacks"
    assert [p for p in paths if p.startswith("/usr/local/share/ca-certificates/")] == []
    local_cas = Path("/usr/local/share/ca-certificates")
    for ca in local_cas.glob("*.crt") if local_cas.is_dir() else ():
        for body in PEM_CERTIFICATE.findall(ca.read_bytes()):
            one_line = base64.b64encode(base64.b64decode(body)).decode()
            assert not any(one_line.encode() in data or body in data for data in image_files.values()), ca
    environment = json.loads(podman("image", "inspect", "--format", "{{json .Config.Env}}", image))
    assert [e for e in environment if re.search(r"TOKEN|PASSWORD|SECRET|_KEY=", e.split("=")[0] + "=")] == []


def test_the_request_paths_modules_are_compiled_in_the_image(image_files: dict[str, bytes]) -> None:
    """The image's wheel carries the C extensions mypyc built (pyproject.toml [tool.idaas-bridge]), which
    its Python imports before the sources beside them: the image runs what the suite tested."""
    site_packages = "/opt/idaas-bridge/lib/python3.11/site-packages/"
    for source in compiled_build.compiled_sources():
        extension = compiled_build.extension_of(source).relative_to(ROOT)
        assert site_packages + str(extension) in image_files, extension
        assert image_files[site_packages + str(extension)].startswith(b"\x7fELF")
