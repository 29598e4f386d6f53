"""helm/idaas-siem-bridge/values.schema.json: Helm rejects an unknown or mistyped value at lint, install and
upgrade instead of ignoring it.

    make chart-schema          (python -m tools.values_schema)

Two sources, so neither can drift:
- `config` (rendered into bridge.yaml) comes from the bridge's settings model in bridge/config.py: its
  sections and keys (dataclass fields), their types, and the limits bridge/config.py names as constants
  (webhook names and count, token length, topic keys and formats, the ack deadline, the smallest record
  size, the librdkafka properties the bridge owns). The
  settings the chart fixes (server hosts, ports and TLS files, spool path) and the webhook tokens (secrets,
  never in the ConfigMap) are left out, so setting them is an error. Numeric lower bounds of the loader
  are in BOUNDS; tests/unit/test_values_schema.py checks each against the loader itself.
- every other value comes from values.yaml: its keys (no others allowed) and the types of their defaults,
  refined by REFINEMENTS (enums, patterns, free-form Kubernetes objects);
- rules across values (Kafka TLS against security.protocol, SASL mechanisms against credentials, Ingress
  or HTTPRoute) are cross_value_rules: in the schema, `helm lint` enforces them too (it ignores fail()).
tests/unit/test_values_schema.py fails while the committed file differs from this output.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

import tools
from bridge import config as model
from bridge.formats import FORMATS

ROOT: Final = tools.ROOT
CHART: Final = Path("helm/idaas-siem-bridge")
SCHEMA: Final = CHART / "values.schema.json"

#: Settings the chart sets itself (bridge.yaml in templates/_helpers.tpl) or keeps out of the ConfigMap.
FIXED_BY_CHART: Final = frozenset(
    {
        "server.host",
        "server.port",
        "server.ops_host",
        "server.ops_port",
        "server.tls_cert_file",
        "server.tls_key_file",
        "spool.path",
        "webhooks.tokens",
        "admin_api.shared_secret",
    }
)
#: Fields of the settings model that no file sets: the loader derives them.
DERIVED: Final = frozenset({"sources", "kafka.sources"})
#: Lower (and upper) bounds the loader enforces on numbers, by setting path; each is checked against
#: bridge.config.load_settings by tests/unit/test_values_schema.py.
BOUNDS: Final[dict[str, dict[str, float]]] = {
    "server.max_body_bytes": {"minimum": 1024},
    "server.limit_concurrency": {"minimum": 1},
    "server.keep_alive_timeout_seconds": {"exclusiveMinimum": 0},
    "server.header_read_timeout_seconds": {"exclusiveMinimum": 0},
    "server.body_read_timeout_seconds": {"exclusiveMinimum": 0},
    "server.shutdown_grace_seconds": {"exclusiveMinimum": 0},
    "server.tls_handshake_timeout_seconds": {"exclusiveMinimum": 0},
    "server.max_header_bytes": {"minimum": model.MIN_HEADER_BYTES, "maximum": model.MAX_HEADER_BYTES},
    "server.max_header_fields": {"minimum": model.MIN_HEADER_FIELDS, "maximum": model.MAX_HEADER_FIELDS},
    "signature.created_window_seconds": {"minimum": 1},
    "kafka.ack_deadline_seconds": {"exclusiveMinimum": 0, "exclusiveMaximum": model.MAX_ACK_DEADLINE_SECONDS},
    "kafka.statistics_interval_seconds": {"exclusiveMinimum": 0},
    "kafka.max_record_bytes": {"minimum": model.MIN_RECORD_BYTES},
    "dedup.ttl_seconds": {"exclusiveMinimum": 0},
    "dedup.max_entries": {"minimum": 1},
    "spool.segment_bytes": {"minimum": 64 * 1024},
    "spool.max_bytes": {"minimum": 64 * 1024},
    "admin_api.request_timeout_seconds": {"exclusiveMinimum": 0},
    "admin_api.webhook_poll_seconds": {"minimum": model.MIN_WEBHOOK_POLL_SECONDS},
    "admin_api.quiet_poll_seconds": {"exclusiveMinimum": 0},
    "admin_api.reenable_test_wait_seconds": {"minimum": 0},
    "admin_api.reenable_max_per_hour": {"minimum": 1, "maximum": 60},
    "admin_api.backfill_max_gap_seconds": {"exclusiveMinimum": 0},
    "admin_api.backfill_margin_seconds": {"minimum": 0},
    "admin_api.backfill_audit_lag_seconds": {"minimum": 0},
}
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
#: librdkafka properties are strings to the bridge; YAML may give them as numbers or booleans.
SCALAR: Final = {"type": ["string", "number", "boolean"]}


# --- config: from the settings model -----------------------------------------------------------------


def _field_schema(path: str, hint: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if path == "webhooks":
        return {
            "type": "array",
            "minItems": 1,
            "maxItems": model.MAX_WEBHOOKS,
            "items": _dataclass_schema("webhooks", model.WebhookSettings),
        }
    if path == "kafka.topics":
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {key: _topic_schema(key) for key in model.TOPIC_KEYS},
        }
    if path == "kafka.client_properties":
        owned = sorted(model.BRIDGE_OWNED_CLIENT_PROPERTIES)
        return {
            "type": "object",
            "additionalProperties": SCALAR,
            "not": {"anyOf": [{"required": [name]} for name in owned]},
        }
    if path == "server.workers":
        return {
            "oneOf": [
                {"type": "integer", "minimum": 1, "maximum": model.MAX_WORKERS},
                {"type": "string", "const": "auto"},
            ]
        }
    if path == "logging.level":
        return {"type": "string", "enum": [*LOG_LEVELS, *(level.lower() for level in LOG_LEVELS)]}
    if origin is types.UnionType and type(None) in args:
        # An optional section (admin_api): absent turns its feature off.
        (present,) = (arg for arg in args if arg is not type(None))
        return _field_schema(path, present)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass_schema(path, hint)
    if origin is typing.Literal:
        return {"type": "string", "enum": list(args)}
    if origin is tuple and args[1:] == (Ellipsis,) and args[0] is str:
        return {"type": "array", "items": {"type": "string"}}
    scalar = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if hint in scalar:
        return {"type": scalar[hint], **BOUNDS.get(path, {})}
    raise TypeError(f"{path}: no JSON schema for the settings type {hint!r}; extend tools/values_schema.py")


def _topic_schema(key: str) -> dict[str, Any]:
    formats = ["native"] if key == "deadletter" else sorted(FORMATS)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1}, "format": {"enum": formats}},
    }


def _dataclass_schema(path: str, cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, vars(model))
    properties = {}
    for field in dataclasses.fields(cls):
        child = f"{path}.{field.name}" if path else field.name
        if child in FIXED_BY_CHART or child in DERIVED:
            continue
        properties[field.name] = _field_schema(child, hints[field.name])
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if cls is model.AdminApiSettings:
        # Empty turns the feature off.
        hostname = {"type": "string", "pattern": model.HOSTNAME.pattern}
        properties["hostname"] = {"anyOf": [{"const": ""}, hostname]}
    if cls is model.WebhookSettings:
        properties["name"] |= {"pattern": model.WEBHOOK_NAME.pattern}
        schema["required"] = ["name"]
    return schema


def config_schema() -> dict[str, Any]:
    return _dataclass_schema("", model.Settings)


# --- everything else: from values.yaml -----------------------------------------------------------------

OBJECT: Final = {"type": "object"}
OBJECTS: Final = {"type": "array", "items": {"type": "object"}}
STRINGS: Final = {"type": "array", "items": {"type": "string"}}
STRING_MAP: Final = {"type": "object", "additionalProperties": {"type": "string"}}
QUANTITY: Final = {"type": ["string", "integer"], "pattern": "^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$"}
DURATION: Final = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$"}
RETENTION: Final = {"enum": ["Retain", "Delete"]}
#: Values whose schema is not what their default's type says: free-form Kubernetes objects and maps,
#: enums and patterns. Keyed by dotted path.
REFINEMENTS: Final[dict[str, dict[str, Any]]] = {
    "image.pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    "image.digest": {"type": "string", "pattern": "^(sha256:[0-9a-f]{64})?$"},
    "podLabels": STRING_MAP,
    "podAnnotations": STRING_MAP,
    "nodeSelector": STRING_MAP,
    "affinity": OBJECT,
    "resources": OBJECT,
    "probes.liveness": OBJECT,
    "probes.readiness": OBJECT,
    "probes.startup": OBJECT,
    "podSecurityContext": OBJECT,
    "securityContext": OBJECT,
    "serviceAccount.annotations": STRING_MAP,
    "spool.sizeLimit": QUANTITY,
    "spool.medium": {"enum": ["", "Memory"]},
    "spool.persistence.size": QUANTITY,
    "spool.persistence.accessModes": {
        "type": "array",
        "minItems": 1,
        "items": {"enum": ["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"]},
    },
    "spool.persistence.retentionPolicy.whenDeleted": RETENTION,
    "spool.persistence.retentionPolicy.whenScaled": RETENTION,
    "secrets.webhookTokens": {
        "type": "object",
        "additionalProperties": {
            "oneOf": [
                {"type": "string", "minLength": model.MIN_TOKEN_LENGTH},
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 2,
                    "items": {"type": "string", "minLength": model.MIN_TOKEN_LENGTH},
                },
            ]
        },
    },
    "secrets.kafkaClientProperties": {"type": "object", "additionalProperties": SCALAR},
    "service.type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
    "service.port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "service.opsPort": {"type": "integer", "minimum": 1, "maximum": 65535},
    "service.annotations": STRING_MAP,
    "service.loadBalancerSourceRanges": STRINGS,
    "ingress.annotations": STRING_MAP,
    "ingress.hosts": {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["host"],
            "properties": {"host": {"type": "string", "minLength": 1}},
        },
    },
    "ingress.tls": {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"secretName": {"type": "string"}, "hosts": STRINGS},
        },
    },
    "httpRoute.parentRefs": OBJECTS,
    "httpRoute.hostnames": STRINGS,
    "httpRoute.labels": STRING_MAP,
    "httpRoute.annotations": STRING_MAP,
    "podDisruptionBudget.maxUnavailable": {"type": ["integer", "string"], "pattern": "^[0-9]+%?$"},
    "networkPolicy.egress.kafkaPorts": {"type": "array", "items": {"type": "integer", "minimum": 1}},
    "serviceMonitor.labels": STRING_MAP,
    "serviceMonitor.interval": DURATION,
    "serviceMonitor.scrapeTimeout": DURATION,
    "prometheusRule.labels": STRING_MAP,
    "prometheusRule.noDeliveriesHours": {"type": "number", "exclusiveMinimum": 0},
    "grafanaDashboard.labels": STRING_MAP,
    "grafanaDashboard.annotations": STRING_MAP,
}


def _inferred(path: str, value: Any) -> dict[str, Any]:
    if path in REFINEMENTS:
        return REFINEMENTS[path]
    if path == "config":
        return config_schema()
    if isinstance(value, Mapping):
        if not value:
            return OBJECT
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                key: _inferred(f"{path}.{key}" if path else key, item) for key, item in value.items()
            },
        }
    if isinstance(value, list):
        return OBJECTS if not value or isinstance(value[0], Mapping) else {"type": "array"}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer", "minimum": 0}
    if isinstance(value, float):
        return {"type": "number"}
    return {"type": "string"}


# --- rules across values: `helm lint` runs the schema but ignores the templates' fail() ------------------

TLS_PROTOCOLS: Final = ("SSL", "SASL_SSL")
SASL_PROTOCOLS: Final = ("SASL_PLAINTEXT", "SASL_SSL")
PROTOCOLS: Final = ("PLAINTEXT", *TLS_PROTOCOLS, "SASL_PLAINTEXT")
PASSWORD_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
CLIENT: Final = ("config", "kafka", "client_properties")
KAFKA_TLS_FILES: Final = ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location")


def _any_case(values: Sequence[str]) -> list[str]:
    """librdkafka reads these enumerations case-insensitively."""
    return [*values, *(value.lower() for value in values)]


def at(path: Sequence[str], schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """`schema` applied to the value at `path` (keys may contain dots); the path must exist if required."""
    for key in reversed(path):
        schema = {"properties": {key: schema}, **({"required": [key]} if required else {})}
    return schema


NON_EMPTY: Final = {"type": "string", "minLength": 1}
EMPTY: Final = {"const": ""}


def rule(comment: str, condition: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    return {"$comment": comment, "if": condition, "then": then}


def cross_value_rules() -> list[dict[str, Any]]:
    protocol = (*CLIENT, "security.protocol")
    tls_on = at(("kafkaTls", "enabled"), {"const": True})
    return [
        rule(
            "config.server.workers auto counts the CPU limit: without resources.limits.cpu it would start "
            "one worker per CPU of the node; set the limit or a number of workers",
            at(("config", "server", "workers"), {"const": "auto"}),
            at(("resources", "limits", "cpu"), {"type": ["string", "number"]}),
        ),
        rule(
            "kafkaTls.enabled needs security.protocol SSL or SASL_SSL: without it the bridge talks PLAINTEXT",
            tls_on,
            at(protocol, {"enum": _any_case(TLS_PROTOCOLS)}),
        ),
        rule(
            "kafkaTls.* has no effect unless kafkaTls.enabled",
            at(("kafkaTls", "enabled"), {"const": False}),
            {
                "properties": {
                    "kafkaTls": {
                        "properties": {
                            **dict.fromkeys(("caCert", "clientCert", "clientKey", "existingSecret"), EMPTY),
                            "clientAuth": {"const": False},
                        }
                    }
                }
            },
        ),
        rule(
            "kafkaTls.enabled needs kafkaTls.caCert or kafkaTls.existingSecret",
            {"allOf": [tls_on, at(("kafkaTls", "existingSecret"), EMPTY)]},
            at(("kafkaTls", "caCert"), NON_EMPTY),
        ),
        rule(
            "kafkaTls.existingSecret holds the certificates: the PEM values stay empty",
            at(("kafkaTls", "existingSecret"), NON_EMPTY),
            {
                "properties": {
                    "kafkaTls": {"properties": dict.fromkeys(("caCert", "clientCert", "clientKey"), EMPTY)}
                }
            },
        ),
        rule(
            "kafkaTls.clientCert and kafkaTls.clientKey go together (mutual TLS)",
            at(("kafkaTls", "clientCert"), NON_EMPTY),
            at(("kafkaTls", "clientKey"), NON_EMPTY),
        ),
        rule(
            "kafkaTls.clientKey and kafkaTls.clientCert go together (mutual TLS)",
            at(("kafkaTls", "clientKey"), NON_EMPTY),
            at(("kafkaTls", "clientCert"), NON_EMPTY),
        ),
        rule(
            "kafkaTls sets the ssl.*.location properties to the mounted files",
            tls_on,
            at(CLIENT, {"not": {"anyOf": [{"required": [key]} for key in KAFKA_TLS_FILES]}}, required=False),
        ),
        rule(
            "SASL needs sasl.mechanisms",
            at(protocol, {"enum": _any_case(SASL_PROTOCOLS)}),
            at(CLIENT, {"required": ["sasl.mechanisms"]}),
        ),
        rule(
            "PLAIN and SCRAM need sasl.username, and a password in secrets.kafkaSaslPassword or "
            "secrets.existingSecret",
            {
                "allOf": [
                    at(protocol, {"enum": _any_case(SASL_PROTOCOLS)}),
                    at((*CLIENT, "sasl.mechanisms"), {"enum": _any_case(PASSWORD_MECHANISMS)}),
                ]
            },
            {
                "allOf": [
                    at((*CLIENT, "sasl.username"), NON_EMPTY),
                    {
                        "anyOf": [
                            at(("secrets", "kafkaSaslPassword"), NON_EMPTY),
                            at(("secrets", "existingSecret"), NON_EMPTY),
                        ]
                    },
                ]
            },
        ),
        rule(
            "secrets.kafkaSaslPassword is only used with security.protocol SASL_SSL or SASL_PLAINTEXT",
            at(("secrets", "kafkaSaslPassword"), NON_EMPTY),
            at(protocol, {"enum": _any_case(SASL_PROTOCOLS)}),
        ),
        rule(
            "a SASL password belongs in secrets.kafkaSaslPassword, not in the ConfigMap",
            {},
            at(CLIENT, {"not": {"required": ["sasl.password"]}}, required=False),
        ),
        rule(
            "security.protocol is one librdkafka knows",
            at(protocol, {}),
            at(protocol, {"enum": _any_case(PROTOCOLS)}),
        ),
        rule(
            "the webhooks are published through an Ingress or an HTTPRoute, not both",
            at(("ingress", "enabled"), {"const": True}),
            at(("httpRoute", "enabled"), {"const": False}),
        ),
        rule(
            "an HTTPRoute attaches to a Gateway: httpRoute.parentRefs",
            at(("httpRoute", "enabled"), {"const": True}),
            at(("httpRoute", "parentRefs"), {"minItems": 1}),
        ),
        rule(
            "service.loadBalancerSourceRanges applies to service.type LoadBalancer only",
            at(("service", "loadBalancerSourceRanges"), {"minItems": 1}),
            at(("service", "type"), {"const": "LoadBalancer"}),
        ),
    ]


def values_schema(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "idaas-siem-bridge Helm chart values",
        "description": "Generated by tools/values_schema.py (make chart-schema); do not edit.",
        **_inferred("", values),
        "allOf": cross_value_rules(),
    }


def schema_json(root: Path = ROOT) -> str:
    values = yaml.safe_load((root / CHART / "values.yaml").read_text(encoding="utf-8"))
    return json.dumps(values_schema(values), indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    tools.run(__doc__, {SCHEMA: schema_json()}, argv)


if __name__ == "__main__":
    main()
