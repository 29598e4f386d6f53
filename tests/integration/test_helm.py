"""helm/idaas-siem-bridge: lint, render, validate every manifest offline, and check what the bridge gets.

Four installs are rendered: the minimal one (a Kafka address and one token), every option on
(tests/helm/values-all-on.yaml), one with pre-existing Secrets, and one published through a Gateway API
HTTPRoute. Core objects are validated with kubernetes-validate's bundled schemas (strict); the Prometheus
Operator and Gateway API CRDs, which it has no schema for, are checked against the small schemas below.
The rendered bridge.yaml is loaded by the bridge's own config loader with the environment the rendered
Secret provides.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bridge.config import describe, env_name, load_settings
from tests.tools import tool
from tools import monitoring

ROOT: Final = Path(__file__).resolve().parents[2]
CHART: Final = ROOT / "helm/idaas-siem-bridge"
ALL_ON: Final = ROOT / "tests/helm/values-all-on.yaml"
REQUIRED: Final = [
    "--set",
    "config.kafka.bootstrap_servers=kafka.kafka.svc:9092",
    "--set",
    "secrets.webhookTokens.idaas=helm-token-0123456789",
]
SCENARIOS: Final = {
    "minimal": REQUIRED,
    "all-on": ["-f", str(ALL_ON)],
    "existing-secrets": [
        f"--set={setting}"
        for setting in (
            "config.kafka.bootstrap_servers=kafka:9092",
            "secrets.existingSecret=bridge-env",
            "kafkaTls.enabled=true",
            "kafkaTls.existingSecret=kafka-ca",
            "kafkaTls.clientAuth=true",
            "config.kafka.client_properties.security\\.protocol=SSL",
            "topics.create=true",
            "serviceAccount.create=false",
            "serviceAccount.name=bridge",
        )
    ],
    "httproute": [
        *REQUIRED,
        "--set=httpRoute.enabled=true",
        "--set=httpRoute.parentRefs[0].name=public",
        "--set=httpRoute.parentRefs[0].namespace=gateway-system",
        "--set=httpRoute.parentRefs[0].sectionName=https",
        "--set=httpRoute.hostnames[0]=idaas-bridge.example.com",
    ],
}
#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion), checked against its schemas too.
MIN_KUBERNETES: Final = "1.27.0"
#: helm-docs as `make chart-docs` runs it.
HELM_DOCS_ARGS: Final = ["--sort-values-order", "file"]
CRD_KINDS: Final = frozenset({"ServiceMonitor", "PrometheusRule", "HTTPRoute"})
IMAGE_CMD: Final = ["serve", "--config", "/etc/idaas-bridge/bridge.yaml"]
DURATION: Final = {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h|d|w|y))+$"}
LABELS: Final = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA: Final = {
    "type": "object",
    "required": ["name", "labels"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": LABELS,
    },
}
SERVICE_MONITOR_SCHEMA: Final = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "namespaceSelector": {
                    "type": "object",
                    "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}},
                },
                "selector": {
                    "type": "object",
                    "required": ["matchLabels"],
                    "properties": {"matchLabels": LABELS},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port", "path"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": DURATION,
                            "scrapeTimeout": DURATION,
                            "relabelings": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "action": {"enum": ["replace", "keep", "drop", "labelmap"]},
                                        "targetLabel": {"type": "string"},
                                        "replacement": {"type": "string"},
                                        "sourceLabels": {"type": "array", "items": {"type": "string"}},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
PROMETHEUS_RULE_SCHEMA: Final = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string"},
                            "interval": DURATION,
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["alert", "expr", "labels", "annotations"],
                                    "properties": {
                                        "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": DURATION,
                                        "labels": {
                                            **LABELS,
                                            "required": ["severity"],
                                            "properties": {
                                                "severity": {"enum": ["info", "warning", "critical"]}
                                            },
                                        },
                                        "annotations": {
                                            **LABELS,
                                            "required": ["summary", "description", "runbook_url"],
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


HTTP_ROUTE_SCHEMA: Final = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "gateway.networking.k8s.io/v1"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["parentRefs", "rules"],
            "properties": {
                "parentRefs": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            key: {"type": "string"}
                            for key in ("name", "namespace", "sectionName", "group", "kind")
                        },
                    },
                },
                "hostnames": {"type": "array", "items": {"type": "string"}},
                "rules": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "matches": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "path": {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "properties": {
                                                "type": {
                                                    "enum": ["Exact", "PathPrefix", "RegularExpression"]
                                                },
                                                "value": {"type": "string", "pattern": "^/"},
                                            },
                                        },
                                        "method": {"enum": ["GET", "POST", "PUT", "DELETE", "PATCH"]},
                                    },
                                },
                            },
                            "backendRefs": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["name", "port"],
                                    "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def helm() -> str:
    return tool("helm", "deploy/tools/install-helm.sh")


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=120)


def render(*args: str) -> list[dict[str, Any]]:
    result = run_helm("template", "idaas", str(CHART), "--namespace", "idaas", *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    return {name: render(*args) for name, args in SCENARIOS.items()}


def find(docs: list[dict[str, Any]], kind: str, component: str = "bridge") -> list[dict[str, Any]]:
    return [
        doc
        for doc in docs
        if doc["kind"] == kind and doc["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]


def one(docs: list[dict[str, Any]], kind: str, component: str = "bridge") -> dict[str, Any]:
    found = find(docs, kind, component)
    assert len(found) == 1, f"{len(found)} {kind} objects of component {component}"
    return found[0]


def workload(docs: list[dict[str, Any]]) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] in ("Deployment", "StatefulSet")]
    assert len(found) == 1
    return found[0]


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def secret_env(docs: list[dict[str, Any]], component: str = "bridge") -> dict[str, str]:
    secrets = [doc for doc in find(docs, "Secret", component) if "kafka-tls" not in doc["metadata"]["name"]]
    return {key: base64.b64decode(value).decode() for doc in secrets for key, value in doc["data"].items()}


def bridge_yaml(docs: list[dict[str, Any]], component: str = "bridge") -> str:
    text: str = one(docs, "ConfigMap", component)["data"]["bridge.yaml"]
    return text


# --- lint and validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_lint_strict(scenario: str) -> None:
    result = run_helm("lint", "--strict", str(CHART), *SCENARIOS[scenario])
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_declares_the_oldest_kubernetes_it_is_validated_against() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={MIN_KUBERNETES}-0"


@pytest.mark.parametrize("version", [MIN_KUBERNETES, kubernetes_validate.latest_version()])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_manifest_is_valid_kubernetes(
    manifests: dict[str, list[dict[str, Any]]], scenario: str, version: str
) -> None:
    for doc in manifests[scenario]:
        if doc["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_prometheus_operator_objects_are_well_formed(
    manifests: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    schemas = {
        "ServiceMonitor": SERVICE_MONITOR_SCHEMA,
        "PrometheusRule": PROMETHEUS_RULE_SCHEMA,
        "HTTPRoute": HTTP_ROUTE_SCHEMA,
    }
    for doc in manifests[scenario]:
        if doc["kind"] in schemas:
            jsonschema.validate(doc, schemas[doc["kind"]])


def test_minimal_install_renders_the_core_objects(manifests: dict[str, list[dict[str, Any]]]) -> None:
    kinds = sorted(doc["kind"] for doc in manifests["minimal"])
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "Pod",  # the `helm test` pod
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "ServiceAccount",
        ]
    )


def test_all_on_renders_every_template(manifests: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {doc["kind"] for doc in manifests["all-on"]}
    assert kinds == {
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Job",
        "NetworkPolicy",
        "Pod",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
        "StatefulSet",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "secrets.webhookTokens.idaas=helm-token-0123456789"],
            "config.kafka.bootstrap_servers is required",
        ),
        (["--set", "config.kafka.bootstrap_servers=k:9092"], 'webhook "idaas" has no token'),
        ([*REQUIRED, "--set", "secrets.existingSecret=env"], "secrets.existingSecret is set"),
        (
            [*REQUIRED, "--set", "terminationGracePeriodSeconds=25"],
            "terminationGracePeriodSeconds (25) must exceed",
        ),
        ([*REQUIRED, "--set", "spool.sizeLimit=1Gi"], "the spool volume (1Gi) is smaller"),
        (
            [*REQUIRED, "--set", "config.admin_api.hostname=acme.us.trustedauth.com"],
            "config.admin_api.hostname is set: set secrets.adminApiSharedSecret",
        ),
    ],
)
def test_bad_values_fail_with_the_value_to_fix(args: list[str], message: str) -> None:
    result = run_helm("template", "idaas", str(CHART), *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_admin_api_secret_goes_in_the_secret_and_the_rest_in_bridge_yaml() -> None:
    docs = render(
        *REQUIRED,
        "--set",
        "config.admin_api.hostname=acme.us.trustedauth.com",
        "--set",
        "config.admin_api.application_id=app-1",
        "--set",
        "secrets.adminApiSharedSecret=admin-secret-0123456789",
    )
    secret = next(doc for doc in docs if doc["kind"] == "Secret" and "data" in doc)
    encoded = secret["data"]["IDAAS_BRIDGE_ADMIN_API_SHARED_SECRET"]
    assert base64.b64decode(encoded).decode() == "admin-secret-0123456789"
    config = yaml.safe_load(bridge_yaml(docs))
    assert config["admin_api"]["hostname"] == "acme.us.trustedauth.com"
    assert "admin-secret" not in bridge_yaml(docs)


SSL: Final = "config.kafka.client_properties.security\\.protocol=SSL"
SASL_SSL: Final = "config.kafka.client_properties.security\\.protocol=SASL_SSL"
SCRAM: Final = "config.kafka.client_properties.sasl\\.mechanisms=SCRAM-SHA-512"
SASL_USER: Final = "config.kafka.client_properties.sasl\\.username=bridge"
TLS_ON: Final = ["kafkaTls.enabled=true", SSL, "kafkaTls.caCert=pem"]
CLIENT: Final = "config.kafka.client_properties."


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (["confg.kafka.bootstrap_servers=k:9092"], "additional properties 'confg' not allowed"),
        (["config.kafka.bootstrap_server=k:9092"], "additional properties 'bootstrap_server' not allowed"),
        (["config.server.port=8443"], "additional properties 'port' not allowed"),  # fixed by the chart
        (["config.spool.ack_mode=kafka-first"], "/config/spool/ack_mode"),
        (["config.kafka.ack_deadline_seconds=3"], "/config/kafka/ack_deadline_seconds"),
        (["config.webhooks[0].name=bad/name"], "/config/webhooks/0/name"),
        (["replicaCount=two"], "/replicaCount"),
        (["spool.sizeLimit=2Gb"], "/spool/sizeLimit"),
        (["kafkaTls.enabled=true", "kafkaTls.caCert=pem"], "missing property 'security.protocol'"),
        (["kafkaTls.enabled=true", "kafkaTls.caCert=pem", SASL_SSL.replace("SASL_SSL", "SASL_PLAINTEXT")],
         "/config/kafka/client_properties/security.protocol"),
        (["kafkaTls.enabled=true", SSL], "/kafkaTls/caCert"),
        (["kafkaTls.caCert=pem", SSL], "/kafkaTls/caCert"),  # set, but kafkaTls is off
        ([*TLS_ON, "kafkaTls.clientCert=pem"], "/kafkaTls/clientKey"),
        ([*TLS_ON, "kafkaTls.existingSecret=s"], "/kafkaTls/caCert"),
        ([*TLS_ON, CLIENT + "ssl\\.ca\\.location=/x"], "/config/kafka/client_properties"),
        ([SASL_SSL], "missing property 'sasl.mechanisms'"),
        ([SASL_SSL, SCRAM], "missing property 'sasl.username'"),
        ([SASL_SSL, SCRAM, SASL_USER], "/secrets/kafkaSaslPassword"),
        (["secrets.kafkaSaslPassword=pw"], "missing property 'security.protocol'"),
        ([CLIENT + "sasl\\.password=pw"], "/config/kafka/client_properties"),
        ([CLIENT + "acks=1"], "/config/kafka/client_properties"),  # the bridge owns it (acks=all)
        ([CLIENT + "security\\.protocol=TLS"], "/config/kafka/client_properties/security.protocol"),
        (["ingress.enabled=true", "httpRoute.enabled=true", "httpRoute.parentRefs[0].name=g"],
         "/httpRoute/enabled"),
        (["httpRoute.enabled=true"], "/httpRoute/parentRefs"),
        (["service.loadBalancerSourceRanges[0]=203.0.113.0/24"], "/service/type"),
        (["resources.limits.cpu=null"], "missing property 'cpu'"),  # workers: auto counts the CPU limit
        (["config.server.workers=0"], "/config/server/workers"),
    ],
)  # fmt: skip
def test_helm_lint_fails_on_an_unknown_or_inconsistent_value(settings: list[str], complaint: str) -> None:
    """values.schema.json: `helm lint` (which ignores the templates' fail()) and install both refuse."""
    args = [*REQUIRED, *(f"--set={setting}" for setting in settings)]
    lint = run_helm("lint", "--strict", str(CHART), *args)
    assert lint.returncode != 0, lint.stdout
    assert complaint in lint.stdout + lint.stderr
    assert run_helm("template", "idaas", str(CHART), *args).returncode != 0


@pytest.mark.parametrize(
    "settings",
    [
        [SASL_SSL, SCRAM, SASL_USER, "secrets.kafkaSaslPassword=pw"],
        [SASL_SSL, CLIENT + "sasl\\.mechanisms=OAUTHBEARER"],
        ["kafkaTls.enabled=true", "kafkaTls.caCert=pem", CLIENT + "security\\.protocol=ssl"],
        ["service.type=LoadBalancer", "service.loadBalancerSourceRanges[0]=203.0.113.0/24"],
        ["resources.limits.cpu=null", "config.server.workers=1"],
    ],
)  # fmt: skip
def test_consistent_kafka_security_and_exposure_settings_pass_lint(settings: list[str]) -> None:
    lint = run_helm("lint", "--strict", str(CHART), *REQUIRED, *(f"--set={setting}" for setting in settings))
    assert lint.returncode == 0, lint.stdout + lint.stderr


# --- what the bridge gets -------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_bridge_yaml_sets_every_setting_the_bridge_has(
    manifests: dict[str, list[dict[str, Any]]], scenario: str, tmp_path: Path
) -> None:
    """Same sections and keys as the bridge's effective configuration (`idaas-bridge check-config`)."""
    text = bridge_yaml(manifests[scenario])
    path = tmp_path / "bridge.yaml"
    path.write_text(text)
    config = yaml.safe_load(text)
    effective = describe(
        load_settings(
            path, environ={env_name(hook["name"]): "helm-token-0123456789" for hook in config["webhooks"]}
        )
    )
    assert set(config) == set(effective)
    for section in set(effective) - {"webhooks", "kafka"}:
        # The Admin API secret is in the chart's Secret (IDAAS_BRIDGE_ADMIN_API_SHARED_SECRET), never here.
        assert set(config[section]) == set(effective[section]) - {"shared_secret"}, section
    assert set(config["kafka"]) == set(effective["kafka"])
    assert set(config["kafka"]["topics"]) == set(effective["kafka"]["topics"])
    for hook in config["webhooks"]:
        assert set(hook) == set(effective["webhooks"][0]) - {"tokens"}
    assert config["server"] | {"public_base_url": "", "trusted_proxies": []} == {
        **config["server"],
        "host": "0.0.0.0",
        "port": 8080,
        "ops_host": "0.0.0.0",
        "ops_port": 9464,
        "tls_cert_file": "",
        "tls_key_file": "",
        "public_base_url": "",
        "trusted_proxies": [],
    }
    assert config["spool"]["path"] == "/var/lib/idaas-bridge/spool"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_bridge_accepts_the_rendered_config_with_the_rendered_secret(
    manifests: dict[str, list[dict[str, Any]]], scenario: str, tmp_path: Path
) -> None:
    docs = manifests[scenario]
    path = tmp_path / "bridge.yaml"
    path.write_text(bridge_yaml(docs))
    environ = secret_env(docs)
    if scenario == "existing-secrets":  # what the user's own Secret would hold
        environ = {env_name("idaas"): "helm-token-0123456789"}
    settings = load_settings(path, environ=environ)
    assert settings.server.port == 8080 and not settings.server.tls
    # The topics Job reads an identical copy.
    if find(docs, "ConfigMap", "topics"):
        assert bridge_yaml(docs, "topics") == bridge_yaml(docs)
        assert secret_env(docs, "topics") == secret_env(docs)


def test_minimal_install_needs_only_a_kafka_address_and_one_token(
    manifests: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    docs = manifests["minimal"]
    assert secret_env(docs) == {"IDAAS_BRIDGE_WEBHOOK_IDAAS_TOKENS": "helm-token-0123456789"}
    path = tmp_path / "bridge.yaml"
    path.write_text(bridge_yaml(docs))
    settings = load_settings(path, environ=secret_env(docs))
    assert settings.kafka.bootstrap_servers == "kafka.kafka.svc:9092"
    assert [(hook.name, hook.tokens) for hook in settings.webhooks] == [("idaas", ("helm-token-0123456789",))]
    assert settings.kafka.client_properties == {}


def test_all_on_secret_env_reaches_the_bridge_settings(
    manifests: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    docs = manifests["all-on"]
    values = yaml.safe_load(ALL_ON.read_text())
    path = tmp_path / "bridge.yaml"
    path.write_text(bridge_yaml(docs))
    env = secret_env(docs)
    assert set(env) == {
        env_name("idaas"),
        env_name("idaas-eu.prod"),
        "IDAAS_BRIDGE_KAFKA_CLIENT_SASL_PASSWORD",
        "IDAAS_BRIDGE_KAFKA_CLIENT_SSL_KEY_PASSWORD",
    }
    settings = load_settings(path, environ=env)
    assert {hook.name: hook.tokens for hook in settings.webhooks} == {
        "idaas": ("token-one-0123456789",),
        "idaas-eu.prod": ("old-token-0123456789", "new-token-0123456789"),
    }
    client = settings.kafka.client_properties
    assert client["sasl.password"] == "s3cret" and client["ssl.key.password"] == "key-pass"
    assert client["ssl.ca.location"] == "/etc/kafka-tls/ca.crt"
    assert client["ssl.certificate.location"] == "/etc/kafka-tls/tls.crt"
    assert client["security.protocol"] == "SASL_SSL"
    assert settings.server.public_base_url == "https://idaas-bridge.example.com"
    assert settings.server.trusted_proxies == ("10.0.0.0/8", "192.168.1.10")
    assert settings.server.shutdown_grace_seconds == 30.5 and settings.server.body_read_timeout_seconds == 5
    assert {key: topic.format for key, topic in settings.kafka.topics.items()} == {
        key: topic.get("format", "native") for key, topic in values["config"]["kafka"]["topics"].items()
    }
    assert settings.spool.ack_mode == "spool_first" and settings.spool.max_bytes == 2147483648
    tls = next(doc for doc in find(docs, "Secret") if doc["metadata"]["name"].endswith("kafka-tls"))
    assert base64.b64decode(tls["data"]["ca.crt"]).decode() == values["kafkaTls"]["caCert"]


# --- the pods -------------------------------------------------------------------------------------------


#: The containers the chart defines (sidecars and init containers are the user's).
CHART_CONTAINERS: Final = frozenset({"bridge", "topics"})


def bridge_container(spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = [container for container in spec["containers"] if container["name"] == "bridge"]
    return container


def _pod_specs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = [workload(docs)["spec"]["template"]["spec"]]
    specs += [job["spec"]["template"]["spec"] for job in find(docs, "Job", "topics")]
    return specs


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_pods_run_non_root_read_only_without_capabilities(
    manifests: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    for spec in _pod_specs(manifests[scenario]):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            if container["name"] not in CHART_CONTAINERS:
                continue
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert {"/etc/idaas-bridge", "/tmp"} <= mounts


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_bridge_container_probes_drain_and_command(
    manifests: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    docs = manifests[scenario]
    spec = workload(docs)["spec"]["template"]["spec"]
    container = bridge_container(spec)
    assert container["args"] == IMAGE_CMD and "command" not in container  # the image's ENTRYPOINT runs
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "ops", "containerPort": 9464, "protocol": "TCP"},
    ]
    ports = yaml.safe_load(bridge_yaml(docs))["server"]
    assert (ports["port"], ports["ops_port"]) == (8080, 9464), "the container ports are the bridge's"
    # The probes ask the operations listener: the webhook port answers only POST /webhooks/<name>.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert "requests" in container["resources"] and "limits" in container["resources"]
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    grace = yaml.safe_load(bridge_yaml(docs))["server"]["shutdown_grace_seconds"]
    assert spec["terminationGracePeriodSeconds"] > int(sleep[1]) + grace
    assert {"mountPath": "/var/lib/idaas-bridge/spool", "name": "spool"} in container["volumeMounts"]
    secret_refs = [source["secretRef"]["name"] for source in container["envFrom"]]
    assert secret_refs[0] == (
        "bridge-env" if scenario == "existing-secrets" else workload(docs)["metadata"]["name"]
    )


def test_one_worker_per_cpu_of_the_limit_by_default(manifests: dict[str, list[dict[str, Any]]]) -> None:
    docs = manifests["minimal"]
    container = bridge_container(workload(docs)["spec"]["template"]["spec"])
    assert yaml.safe_load(bridge_yaml(docs))["server"]["workers"] == "auto"
    assert container["resources"]["limits"]["cpu"] == "2"  # cgroup cpu.max 200000 100000: two workers


def test_spool_is_a_size_limited_empty_dir_by_default(manifests: dict[str, list[dict[str, Any]]]) -> None:
    deployment = workload(manifests["minimal"])
    assert deployment["kind"] == "Deployment"
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["spool"] == {"name": "spool", "emptyDir": {"sizeLimit": "2Gi"}}
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_persistent_spool_is_a_statefulset_with_one_claim_per_pod(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    docs = manifests["all-on"]
    statefulset = workload(docs)
    assert statefulset["kind"] == "StatefulSet"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "spool"
    assert claim["spec"]["resources"]["requests"]["storage"] == "4Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    volumes = {volume["name"] for volume in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert "spool" not in volumes, "the claim template provides the spool volume"
    assert statefulset["spec"]["serviceName"] == one(docs, "Service")["metadata"]["name"]
    assert "replicas" not in statefulset["spec"], "the HPA owns the replica count"
    target = one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": statefulset["metadata"]["name"]}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_selectors_pick_the_bridge_pods_and_never_the_topics_job(
    manifests: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    docs = manifests[scenario]
    pod_labels = workload(docs)["spec"]["template"]["metadata"]["labels"]
    selectors = [
        workload(docs)["spec"]["selector"]["matchLabels"],
        one(docs, "Service")["spec"]["selector"],
        *(doc["spec"]["selector"]["matchLabels"] for doc in find(docs, "PodDisruptionBudget")),
        *(doc["spec"]["podSelector"]["matchLabels"] for doc in find(docs, "NetworkPolicy")),
    ]
    job_labels = [job["spec"]["template"]["metadata"]["labels"] for job in find(docs, "Job", "topics")]
    for selector in selectors:
        assert matches(selector, pod_labels)
        assert not any(matches(selector, labels) for labels in job_labels)


# --- exposure and monitoring -----------------------------------------------------------------------------


def test_ingress_publishes_only_the_webhooks_with_tls(manifests: dict[str, list[dict[str, Any]]]) -> None:
    docs = manifests["all-on"]
    ingress = one(docs, "Ingress")
    service = one(docs, "Service")
    assert ingress["spec"]["tls"] == [
        {
            "secretName": "idaas-bridge-tls",
            "hosts": ["idaas-bridge.example.com", "idaas-bridge-dr.example.com"],
        }
    ]
    for rule in ingress["spec"]["rules"]:
        (path,) = rule["http"]["paths"]
        assert path["path"] == "/webhooks/" and path["pathType"] == "Prefix"
        assert path["backend"]["service"] == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
        {"name": "ops", "port": 9464, "targetPort": "ops", "protocol": "TCP"},
    ]


def namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


#: This release's `helm test` pod: it reaches both ports whatever the peers configured.
TEST_POD_PEER: Final = {
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/name": "idaas-siem-bridge",
            "app.kubernetes.io/instance": "idaas",
            "app.kubernetes.io/component": "test",
        }
    }
}


def test_network_policy_admits_webhooks_from_the_ingress_and_metrics_from_monitoring_by_default(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    minimal = one(manifests["minimal"], "NetworkPolicy")["spec"]
    assert minimal["policyTypes"] == ["Ingress"]
    assert minimal["ingress"] == [
        {"ports": [{"port": 8080, "protocol": "TCP"}], "from": [namespace("ingress-nginx"), TEST_POD_PEER]},
        {"ports": [{"port": 9464, "protocol": "TCP"}], "from": [namespace("monitoring"), TEST_POD_PEER]},
    ]


def test_network_policy_without_peers_opens_webhooks_to_all_and_ops_to_the_test_pod_only() -> None:
    docs = render(
        *REQUIRED, "--set-json", "networkPolicy.webhookFrom=[]", "--set-json", "networkPolicy.opsFrom=[]"
    )
    assert one(docs, "NetworkPolicy")["spec"]["ingress"] == [
        {"ports": [{"port": 8080, "protocol": "TCP"}]},
        {"ports": [{"port": 9464, "protocol": "TCP"}], "from": [TEST_POD_PEER]},
    ]
    # The single list of before the operations port is refused (values.schema.json), not silently ignored.
    old_key = 'networkPolicy.ingressFrom=[{"ipBlock": {"cidr": "10.0.0.0/8"}}]'
    result = run_helm("template", "idaas", str(CHART), *REQUIRED, "--set-json", old_key)
    assert result.returncode != 0 and "ingressFrom" in result.stderr


def test_network_policy_restricts_egress_to_dns_and_kafka(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    restricted = one(manifests["all-on"], "NetworkPolicy")["spec"]
    assert restricted["policyTypes"] == ["Ingress", "Egress"]
    webhooks, ops = restricted["ingress"]
    *webhook_peers, test_pod = webhooks["from"]
    assert webhooks["ports"] == [{"port": 8080, "protocol": "TCP"}] and len(webhook_peers) == 1
    assert test_pod == TEST_POD_PEER
    assert ops["ports"] == [{"port": 9464, "protocol": "TCP"}] and ops["from"][-1] == TEST_POD_PEER
    assert len(ops["from"]) == 3
    dns, kafka, extra = restricted["egress"]
    assert {port["port"] for port in dns["ports"]} == {53}
    assert kafka == {
        "ports": [{"port": 9096, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
    }
    assert extra["to"] == [{"ipBlock": {"cidr": "169.254.169.254/32"}}]


def test_service_monitor_scrapes_metrics_with_the_release_full_name_as_job(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    docs = manifests["all-on"]
    monitor = one(docs, "ServiceMonitor", "monitoring")
    service = one(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["idaas"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "ops", "metrics are served on the operations port only"
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
    assert {"action": "replace", "targetLabel": "job", "replacement": "idaas-bridge"} in endpoint[
        "relabelings"
    ]
    assert service["metadata"]["name"] == "idaas-bridge"  # fullnameOverride: the job is the full name


@pytest.mark.parametrize(
    ("release", "namespace", "job"),
    [
        ("idaas", "idaas", "idaas-idaas-siem-bridge"),
        ("prod-idaas-siem-bridge", "prod", "prod-idaas-siem-bridge"),
    ],
)
def test_prometheus_rule_is_scoped_to_the_release_with_the_configured_no_delivery_hours(
    release: str, namespace: str, job: str, tmp_path: Path
) -> None:
    """The rendered rules equal the generator's for this release's namespace and job, and are valid."""
    result = run_helm(
        "template", release, str(CHART), "--namespace", namespace, *REQUIRED,
        "--set", "prometheusRule.enabled=true", "--set", "prometheusRule.noDeliveriesHours=12",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    groups = one(docs, "PrometheusRule", "monitoring")["spec"]["groups"]
    expected = monitoring.alert_rules(
        monitoring.Target((("namespace", namespace), ("job", job)), "12", monitoring.project_runbook_url())
    )
    assert [rule for group in groups for rule in group["rules"]] == expected
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    check = subprocess.run(
        [tool("promtool", "deploy/tools/install-promtool.sh"), "check", "rules", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert f'namespace="{namespace}", job="{job}"' in expected[0]["expr"]


def test_two_releases_of_the_same_name_in_two_namespaces_alert_apart(tmp_path: Path) -> None:
    """promtool evaluates the PrometheusRules of `idaas-siem-bridge` in staging and in prod together: each
    fires for its own release only (a streak is not summed across them, a missing prod is not hidden by a
    present staging)."""
    rule_files = []
    for namespace in ("staging", "prod"):
        result = run_helm(
            "template", "idaas-siem-bridge", str(CHART), "--namespace", namespace, *REQUIRED,
            "--set", "prometheusRule.enabled=true",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        path = tmp_path / f"rules-{namespace}.yaml"
        path.write_text(
            yaml.safe_dump({"groups": one(docs, "PrometheusRule", "monitoring")["spec"]["groups"]})
        )
        rule_files.append(path.name)

    def series(metric: str, namespace: str, pod: str, values: str, **labels: str) -> dict[str, str]:
        selector = {"namespace": namespace, "job": "idaas-siem-bridge", "pod": pod, "instance": f"{pod}:8080"}
        text = ",".join(f'{key}="{value}"' for key, value in (selector | labels).items())
        return {"series": f"{metric}{{{text}}}", "values": values}

    def firing(alert: str, namespace: str, severity: str, **labels: str) -> dict[str, Any]:
        sample = {
            "alertname": alert,
            "alertstate": "firing",
            "job": "idaas-siem-bridge",
            "namespace": namespace,
        }
        text = ",".join(
            f'{key}="{value}"' for key, value in sorted((sample | labels | {"severity": severity}).items())
        )
        return {"labels": f"ALERTS{{{text}}}", "value": 1}

    tests = {
        "rule_files": rule_files,
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    series("up", "staging", "bridge-a", "1x10"),
                    series("idaas_bridge_failure_streak", "staging", "bridge-a", "15x10", webhook="idaas"),
                    series("idaas_bridge_failure_streak", "staging", "bridge-b", "15x10", webhook="idaas"),
                    series("idaas_bridge_failure_streak", "prod", "bridge-a", "25x10", webhook="idaas"),
                ],
                "promql_expr_test": [
                    {
                        "expr": 'ALERTS{alertstate="firing"}',
                        "eval_time": "7m",
                        "exp_samples": [
                            firing("IdaasBridgeAbsent", "prod", "critical"),
                            firing("IdaasBridgeWebhookAutoDisableRisk", "prod", "warning", webhook="idaas"),
                            firing(
                                "IdaasBridgeWebhookAutoDisableRisk", "staging", "warning", webhook="idaas"
                            ),
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "two-releases.test.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [tool("promtool", "deploy/tools/install-promtool.sh"), "test", "rules", "two-releases.test.yaml"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_dashboard_config_map_for_the_sidecar(manifests: dict[str, list[dict[str, Any]]]) -> None:
    dashboard = one(manifests["all-on"], "ConfigMap", "monitoring")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Security"}
    (content,) = dashboard["data"].values()
    assert content == (ROOT / "deploy/grafana/idaas-siem-bridge.json").read_text()
    assert json.loads(content)["uid"] == "idaas-siem-bridge"


# --- the topics Job --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["all-on", "existing-secrets"])
def test_topics_job_runs_before_install_with_its_own_copies(
    manifests: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    docs = manifests[scenario]
    job = one(docs, "Job", "topics")
    hooks = find(docs, "ConfigMap", "topics") + find(docs, "Secret", "topics")
    for doc in [job, *hooks]:
        annotations = doc["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    for doc in hooks:  # created before the Job
        assert int(doc["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            job["metadata"]["annotations"]["helm.sh/hook-weight"]
        )
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"][:3] == ["topics", "--config", "/etc/idaas-bridge/bridge.yaml"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["config"]["configMap"]["name"] == one(docs, "ConfigMap", "topics")["metadata"]["name"]
    hook_secrets = {doc["metadata"]["name"] for doc in find(docs, "Secret", "topics")}
    env_secret = container["envFrom"][0]["secretRef"]["name"]
    tls_secret = volumes["kafka-tls"]["secret"]["secretName"]
    if scenario == "existing-secrets":
        assert (env_secret, tls_secret) == ("bridge-env", "kafka-ca") and not hook_secrets
        assert spec["serviceAccountName"] == "bridge"
    else:
        assert {env_secret, tls_secret} == hook_secrets
        assert "serviceAccountName" not in spec, "the chart's ServiceAccount does not exist before install"


# --- values.yaml -----------------------------------------------------------------------------------------


def helm_docs(chart: Path) -> None:
    command = [tool("helm-docs", "deploy/tools/install-go-tools.sh"), *HELM_DOCS_ARGS]
    result = subprocess.run(
        [*command, "--chart-search-root", str(chart)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_chart_readme_is_what_helm_docs_writes(tmp_path: Path) -> None:
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    helm_docs(copy)
    assert (copy / "README.md").read_text() == (CHART / "README.md").read_text(), "run `make chart-docs`"


def test_values_yaml_documents_every_setting() -> None:
    """Every row of the README's values table (helm-docs: a `# --` comment on the value or a parent of
    it) has a description, and every top-level value appears."""
    rows = [
        line.split(" | ")
        for line in (CHART / "README.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith(("| Key", "|--"))
    ]
    undocumented = [row[0] for row in rows if not row[3].strip(" |")]
    assert not undocumented
    documented = {row[0].lstrip("| ").split(".")[0] for row in rows}
    assert documented == set(yaml.safe_load((CHART / "values.yaml").read_text()))


@pytest.mark.parametrize(
    ("scenario", "urls"),
    [
        ("minimal", ["https://<your public host>/webhooks/idaas"]),
        ("all-on", ["https://idaas-bridge.example.com/webhooks/idaas", "https://hooks.example.com/idaas/eu"]),
        ("httproute", ["https://idaas-bridge.example.com/webhooks/idaas"]),
    ],
)
def test_install_notes_list_the_callback_urls_to_register(
    scenario: str, urls: list[str], tmp_path: Path
) -> None:
    """NOTES.txt renders (helm template skips it), through a chart copy that renders it into a ConfigMap."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates/NOTES.txt", chart / "files/NOTES.txt")
    (chart / "templates/notes-check.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {NOTES.txt: {{ tpl (.Files.Get "files/NOTES.txt") . | toJson }}}\n'
    )
    result = run_helm(
        "template", "idaas", str(chart), "--show-only", "templates/notes-check.yaml", *SCENARIOS[scenario]
    )
    assert result.returncode == 0, result.stderr
    notes: str = yaml.safe_load(result.stdout)["data"]["NOTES.txt"]
    listed = [line.strip() for line in notes.splitlines() if line.startswith("  http")]
    assert listed == urls
    kind = workload(render(*SCENARIOS[scenario]))["kind"].lower()
    assert f"exec {kind}/" in notes
    assert "helm test idaas" in notes
    assert ("No Ingress or HTTPRoute was created" in notes) == (scenario == "minimal")


# --- extension points, exposure alternatives, helm test ---------------------------------------------------


def test_extension_points_reach_the_pods(manifests: dict[str, list[dict[str, Any]]]) -> None:
    values = yaml.safe_load(ALL_ON.read_text())
    spec = workload(manifests["all-on"])["spec"]["template"]["spec"]
    bridge = bridge_container(spec)
    assert bridge["envFrom"][1:] == values["extraEnvFrom"]
    assert bridge["env"] == values["extraEnv"]
    assert [mount for mount in bridge["volumeMounts"] if mount["name"] == "secrets-store"] == values[
        "extraVolumeMounts"
    ]
    assert [volume for volume in spec["volumes"] if volume["name"] == "secrets-store"] == values[
        "extraVolumes"
    ]
    assert spec["containers"][1:] == values["sidecars"]
    assert spec["initContainers"] == values["initContainers"]
    assert spec["topologySpreadConstraints"] == values["topologySpreadConstraints"]
    assert spec["priorityClassName"] == "high-priority"
    minimal = workload(manifests["minimal"])["spec"]["template"]["spec"]
    assert "initContainers" not in minimal and [c["name"] for c in minimal["containers"]] == ["bridge"]


def test_load_balancer_source_ranges(manifests: dict[str, list[dict[str, Any]]]) -> None:
    spec = one(manifests["all-on"], "Service")["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["loadBalancerSourceRanges"] == ["203.0.113.0/24", "198.51.100.7/32"]
    assert "loadBalancerSourceRanges" not in one(manifests["minimal"], "Service")["spec"]


def test_http_route_publishes_only_post_webhooks_instead_of_an_ingress(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    docs = manifests["httproute"]
    assert not find(docs, "Ingress")
    route = one(docs, "HTTPRoute")["spec"]
    service = one(docs, "Service")
    assert route["parentRefs"] == [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]
    assert route["hostnames"] == ["idaas-bridge.example.com"]
    (rule,) = route["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/webhooks/"}, "method": "POST"}]
    assert rule["backendRefs"] == [
        {"name": service["metadata"]["name"], "port": service["spec"]["ports"][0]["port"]}
    ]
    # Signatures cover the URL: the route's first host name is the bridge's public base URL.
    assert (
        yaml.safe_load(bridge_yaml(docs))["server"]["public_base_url"] == "https://idaas-bridge.example.com"
    )


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_test_pod_checks_readiness_and_every_webhook_route_through_the_service(
    manifests: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    docs = manifests[scenario]
    (pod,) = [doc for doc in docs if doc["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = one(docs, "Service")
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["python", "-c"]
    script, base, ops, *webhooks = container["args"]
    ports = {port["name"]: port["port"] for port in service["spec"]["ports"]}
    assert base == f"http://{service['metadata']['name']}.idaas.svc:{ports['http']}"
    assert ops == f"http://{service['metadata']['name']}.idaas.svc:{ports['ops']}"
    assert webhooks == [hook["name"] for hook in yaml.safe_load(bridge_yaml(docs))["webhooks"]]
    assert container["image"] == bridge_container(workload(docs)["spec"]["template"]["spec"])["image"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    compile(script, "helm-test", "exec")  # the script the pod runs is valid Python


def test_helm_test_script_expects_ready_and_405_from_the_webhook_routes(tmp_path: Path) -> None:
    """The pod's script against stand-ins of the two listeners: passes on /readyz 200 from the operations
    port and 405 per webhook from the webhook port, fails on 404."""
    import http.server
    import threading

    def listener(answers: dict[str, int]) -> http.server.ThreadingHTTPServer:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(answers.get(self.path, 404))
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    webhooks = listener({"/webhooks/idaas": 405})
    ops = listener({"/readyz": 200})
    try:
        (pod,) = [doc for doc in render(*REQUIRED) if doc["kind"] == "Pod"]
        script = pod["spec"]["containers"][0]["args"][0]
        urls = [f"http://127.0.0.1:{server.server_address[1]}" for server in (webhooks, ops)]
        run = [sys.executable, "-c", script]
        assert subprocess.run([*run, *urls, "idaas"], capture_output=True, timeout=30).returncode == 0
        failed = subprocess.run([*run, *urls, "idaas", "missing"], capture_output=True, text=True, timeout=30)
        assert failed.returncode != 0 and "expected 405" in failed.stderr
        swapped = subprocess.run([*run, *reversed(urls), "idaas"], capture_output=True, timeout=30)
        assert swapped.returncode != 0, "/readyz is asked on the operations port only"
    finally:
        webhooks.shutdown()
        ops.shutdown()


# --- checksums ---------------------------------------------------------------------------------------------


def _pod_annotations(*args: str) -> dict[str, str]:
    annotations: dict[str, str] = workload(render(*args))["spec"]["template"]["metadata"]["annotations"]
    return annotations


def test_secret_checksum_reveals_no_value_and_follows_keys_and_the_rollout_token() -> None:
    base = _pod_annotations(*REQUIRED)["checksum/secret"]
    other_token = _pod_annotations(*REQUIRED, "--set", "secrets.webhookTokens.idaas=another-token-0123456789")
    assert other_token["checksum/secret"] == base, "the checksum must not depend on a secret value"
    rolled = _pod_annotations(*REQUIRED, "--set", "secrets.rolloutToken=rotation-2")
    assert rolled["checksum/secret"] != base
    second_webhook = _pod_annotations(
        *REQUIRED,
        "--set=config.webhooks[0].name=idaas,config.webhooks[1].name=eu,secrets.webhookTokens.eu=eu-token-0123456789",
    )
    assert second_webhook["checksum/secret"] != base  # a new key: the pods need the new variable
    existing = _pod_annotations(
        "--set", "config.kafka.bootstrap_servers=k:9092", "--set", "secrets.existingSecret=env"
    )
    assert existing["checksum/secret"] != base


def test_kafka_tls_checksum_follows_the_certificates_not_the_key() -> None:
    tls = [*REQUIRED, f"--set={SSL}", "--set=kafkaTls.enabled=true", "--set=kafkaTls.caCert=ca-1"]
    mutual = ["--set=kafkaTls.clientCert=cert-1", "--set=kafkaTls.clientKey=key-1"]
    base = _pod_annotations(*tls, *mutual)["checksum/kafka-tls"]
    assert _pod_annotations(*tls, *mutual[:1], "--set=kafkaTls.clientKey=key-2")["checksum/kafka-tls"] == base
    assert _pod_annotations(*tls, "--set=kafkaTls.clientCert=cert-2", mutual[1])["checksum/kafka-tls"] != base
    assert _pod_annotations(*tls[:-1], "--set=kafkaTls.caCert=ca-2", *mutual)["checksum/kafka-tls"] != base
    assert "checksum/kafka-tls" not in _pod_annotations(*REQUIRED)
