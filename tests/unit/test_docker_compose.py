"""deploy/docker-compose.yml and the files it mounts, checked statically (CI has no Docker engine)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from bridge.config import load_settings
from tests.promql_exprs import DASHBOARD
from tools import monitoring

ROOT: Final = Path(__file__).resolve().parents[2]
DEPLOY: Final = ROOT / "deploy"
COMPOSE: Final = DEPLOY / "docker-compose.yml"
CONFIG_PATH: Final = "/etc/idaas-bridge/bridge.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _mount(volume: str) -> tuple[str, str]:
    source, target = volume.split(":")[:2]
    return source, target


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_services_and_pinned_images(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"kafka", "topics", "bridge", "prometheus", "grafana"}
    for name, service in services.items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: pin a tag, got {image}"
        assert not image.endswith(":latest"), name


def test_kafka_is_a_single_kraft_node_matching_the_test_broker_version(
    services: dict[str, dict[str, Any]],
) -> None:
    kafka = services["kafka"]
    pom = (DEPLOY / "kafka/pom.xml").read_text()
    version = re.search(r"<kafka.version>(.+)</kafka.version>", pom)
    assert version and kafka["image"] == f"apache/kafka:{version[1]}"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "a base64url-encoded UUID"
    assert not any("ZOOKEEPER" in key for key in env)
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(advertised) | {env["KAFKA_CONTROLLER_LISTENER_NAMES"]} == set(listeners) == set(protocols)
    assert advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]] == "kafka:9092"
    for key, value in env.items():
        if key.endswith(("REPLICATION_FACTOR", "MIN_ISR")):
            assert value == 1, key
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_bridge_is_built_from_the_dockerfile_and_hardened(services: dict[str, dict[str, Any]]) -> None:
    bridge = services["bridge"]
    build = bridge["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert bridge["read_only"] is True and bridge["tmpfs"] == ["/tmp"]
    assert bridge["user"] == "10001:10001" and bridge["cap_drop"] == ["ALL"]
    assert bridge["ports"] == ["127.0.0.1:8080:8080", "127.0.0.1:9464:9464"], "webhooks, operations"
    assert "spool:/var/lib/idaas-bridge/spool" in bridge["volumes"]
    assert "command" not in bridge, "runs the image's CMD: serve --config /etc/idaas-bridge/bridge.yaml"
    assert bridge["depends_on"] == {"topics": {"condition": "service_completed_successfully"}}
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}


def test_topics_service_runs_idaas_bridge_topics(services: dict[str, dict[str, Any]]) -> None:
    topics = services["topics"]
    assert topics["image"] == services["bridge"]["image"]
    assert topics["command"][:3] == ["topics", "--config", CONFIG_PATH]
    assert topics["command"][topics["command"].index("--replication-factor") + 1] == "1"


def test_the_bridge_accepts_its_compose_configuration(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The image's config (config/bridge.yaml on port 8080) with the compose environment, defaults applied."""
    config = (ROOT / "config/bridge.yaml").read_text().replace("  port: 8443\n", "  port: 8080\n")
    path = tmp_path / "bridge.yaml"
    path.write_text(config)
    environ = {
        key: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
        for key, value in services["bridge"]["environment"].items()
    }
    settings = load_settings(path, environ=environ)
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.server.port == 8080 and not settings.server.tls
    assert settings.server.ops_port == 9464
    assert settings.webhooks[0].tokens == ("dev-token-change-me",)


def test_the_shell_variables_it_reads_are_accepted_by_a_bridge_started_from_that_shell(
    tmp_path: Path,
) -> None:
    # The header's `simulate` runs in the shell that ran `docker compose up`; the bridge refuses an
    # IDAAS_BRIDGE_* variable it does not know, so the compose file's own inputs must not be one.
    interpolated = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text(encoding="utf-8")))
    assert "DEV_TOKEN" in interpolated
    path = tmp_path / "bridge.yaml"
    path.write_text((ROOT / "config/bridge.yaml").read_text())
    shell = {name: "set-in-the-shell" for name in interpolated}
    settings = load_settings(path, environ=shell | {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": "dev-token-change-me"})
    assert settings.webhooks[0].tokens == ("dev-token-change-me",)


def test_bind_mounts_exist_and_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for service in services.values():
        for volume in service.get("volumes", []):
            source, _ = _mount(volume)
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
            else:
                assert source in compose["volumes"], source
        for dependency in service.get("depends_on", []):
            assert dependency in services


def test_prometheus_scrapes_the_bridge_as_the_job_the_alerts_expect(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = dict(_mount(volume) for volume in services["prometheus"]["volumes"])
    assert mounts["./prometheus/alerts.yaml"] == "/etc/prometheus/alerts.yaml"
    config = _yaml(DEPLOY / "prometheus/prometheus.yml")
    assert config["rule_files"] == ["alerts.yaml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == monitoring.COMPOSE_JOB
    # The operations port serves /metrics; namespace and pod name the bridge in alert summaries and
    # dashboard legends, as on Kubernetes.
    assert job["static_configs"] == [
        {"targets": ["bridge:9464"], "labels": {"namespace": "docker-compose", "pod": "bridge"}}
    ]
    assert f'job="{monitoring.COMPOSE_JOB}"' in (DEPLOY / "prometheus/alerts.yaml").read_text()


def test_grafana_provisions_the_datasource_and_the_dashboard(services: dict[str, dict[str, Any]]) -> None:
    mounts = dict(_mount(volume) for volume in services["grafana"]["volumes"])
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboard_target = mounts[f"./grafana/{DASHBOARD.name}"]
    (datasource,) = _yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yaml")["datasources"]
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = _yaml(DEPLOY / "grafana/provisioning/dashboards/idaas-siem-bridge.yaml")["providers"]
    assert Path(dashboard_target).parent == Path(provider["options"]["path"])
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == dashboard_target
