"""Typed settings: `config/bridge.yaml` plus `IDAAS_BRIDGE_*` environment overrides.

Loaded once at start-up and passed down (as uvicorn does with its `Config`). Every problem is reported at
start-up with the setting's path, the offending value and what to do, never at the first request.

Environment overrides:
- `IDAAS_BRIDGE_CONFIG`: path of the YAML file.
- `IDAAS_BRIDGE_<SECTION>__<KEY>`: any scalar setting, e.g. `IDAAS_BRIDGE_KAFKA__BOOTSTRAP_SERVERS`
  (values are parsed as YAML scalars, so `1.5`, `true` and `8443` get their types).
- `IDAAS_BRIDGE_WEBHOOK_<NAME>_TOKENS`: the webhook's token, or two comma-separated during rotation
  (`<NAME>` is the webhook name upper-cased with each `-` and `.` as `_`: `eu-prod` → `EU_PROD`,
  `eu--prod` → `EU__PROD`). Names that differ only in case or in `-`, `_`, `.` would share a variable and
  are refused at start-up. Tokens belong in the environment (a Kubernetes Secret), not in the file.
- `IDAAS_BRIDGE_KAFKA_CLIENT_<PROPERTY>`: a librdkafka property with `.` as `_`,
  e.g. `IDAAS_BRIDGE_KAFKA_CLIENT_SASL_PASSWORD` → `sasl.password`.
- `IDAAS_BRIDGE_ADMIN_API_SHARED_SECRET`: the shared secret of the IDaaS Administration API application
  (`admin_api` section); never read from the file.
These families are never read as `<SECTION>__<KEY>` overrides, whatever their names contain. Any other
variable with the prefix is refused (a typo, such as a missing `_` of `__`, would be ignored otherwise); a
token variable of a webhook the file does not configure is not (one Secret may serve several bridges), nor
are the variables Kubernetes sets for a Service whose name begins `idaas-bridge` (`_SERVICE_LINK`).
Errors name each value by where it came from (`Sources`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import yaml

from bridge.formats import FORMATS

ENV_PREFIX: Final = "IDAAS_BRIDGE_"
MAX_WEBHOOKS: Final = 20
#: IDaaS abandons an attempt after 3 s; the bridge must have answered well before.
IDAAS_DEADLINE_SECONDS: Final = 3.0
#: IDaaS retries an attempt only when it was answered 5xx, after about 2 s and then about 4 s, each with a
#: small random jitter: 3 attempts in all (IDAAS_DEADLINE_SECONDS each). `idaas-bridge simulate` follows it.
IDAAS_RETRY_DELAYS_SECONDS: Final = (2.0, 4.0)
IDAAS_RETRY_JITTER_SECONDS: Final = 0.5
#: The ack deadline must leave time, inside those 3 s, for the spool's fsync after a missed ack.
MAX_ACK_DEADLINE_SECONDS: Final = 2.5
WEBHOOK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
TOPIC_KEYS: Final = ("authentication", "user", "authenticator", "unknown", "deadletter")
#: The shortest webhook token accepted: an empty or short key lets anyone sign (or guess) deliveries.
MIN_TOKEN_LENGTH: Final = 16
#: Kafka client properties whose name contains one of these are secrets wherever they came from.
SECRET_KEY_PARTS: Final = ("password", "secret", "token", "key", "passphrase", "pem", "jaas", "kinit")
#: SASL/SSL properties shown by check-config; every other sasl.* / ssl.* one is masked (librdkafka keeps
#: adding secret-bearing ones, e.g. sasl.oauthbearer.config, so the safe default is to hide).
PUBLIC_SECURITY_PROPERTIES: Final = frozenset(
    {
        "sasl.mechanism",
        "sasl.mechanisms",
        "sasl.username",
        "sasl.kerberos.service.name",
        "sasl.kerberos.principal",
        "sasl.oauthbearer.method",
        "sasl.oauthbearer.client.id",
        "sasl.oauthbearer.scope",
        "sasl.oauthbearer.token.endpoint.url",
        "ssl.ca.location",
        "ssl.ca.certificate.stores",
        "ssl.certificate.location",
        "ssl.crl.location",
        "ssl.keystore.location",
        "ssl.endpoint.identification.algorithm",
        "ssl.cipher.suites",
        "ssl.curves.list",
        "ssl.sigalgs.list",
    }
)
WEBHOOK_ENV_PREFIX: Final = f"{ENV_PREFIX}WEBHOOK_"
KAFKA_CLIENT_ENV_PREFIX: Final = f"{ENV_PREFIX}KAFKA_CLIENT_"
ADMIN_API_SECRET_ENV: Final = f"{ENV_PREFIX}ADMIN_API_SHARED_SECRET"
CONFIG_ENV: Final = f"{ENV_PREFIX}CONFIG"
#: A tenant hostname, optionally with a port: `<customer>.<region>.trustedauth.com`, never a URL.
HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?$")
#: The shortest webhook poll interval accepted: state changes are rare, and the Admin API documents no rate
#: limit, so the bridge stays well inside any (the Splunk IDaaS input refuses under 30 s for the same reason).
MIN_WEBHOOK_POLL_SECONDS: Final = 30.0
#: librdkafka properties the bridge sets itself (with their aliases), and what to do instead: a client
#: property may neither point a client elsewhere nor weaken what the durability promise rests on.
BRIDGE_OWNED_CLIENT_PROPERTIES: Final = {
    "bootstrap.servers": "set kafka.bootstrap_servers instead",
    "metadata.broker.list": "set kafka.bootstrap_servers instead",
    "acks": "the bridge always produces with acks=all",
    "request.required.acks": "the bridge always produces with acks=all",
    "enable.idempotence": "the bridge always produces with enable.idempotence=true",
    "message.timeout.ms": "set kafka.ack_deadline_seconds instead",
    "delivery.timeout.ms": "set kafka.ack_deadline_seconds instead",
    "message.max.bytes": (
        "set kafka.max_record_bytes instead; the bridge derives the producer's limit from it and checks "
        "records against it before producing them"
    ),
    "statistics.interval.ms": "set kafka.statistics_interval_seconds instead",
}

AckMode = Literal["kafka_first", "spool_first"]
#: What a dead-letter record holds besides the body: its fields and headers, the webhook name three times
#: (63 bytes at most) and a reason of at most MAX_REASON_BYTES (six times that if JSON escapes every byte).
DEADLETTER_OVERHEAD_BYTES: Final = 8192
MAX_REASON_BYTES: Final = 1024
#: Bounds of server.max_header_bytes / max_header_fields: room for IDaaS's ~1 KiB of headers behind a proxy
#: that adds its own, and small enough that a request head stays cheap to buffer and parse.
MIN_HEADER_BYTES: Final = 4 * 1024
MAX_HEADER_BYTES: Final = 256 * 1024
MIN_HEADER_FIELDS: Final = 16
MAX_HEADER_FIELDS: Final = 1000
#: The smallest kafka.max_record_bytes accepted.
MIN_RECORD_BYTES: Final = 64 * 1024
#: The most server.workers accepted: each worker holds two Kafka producers and a spool, and the per-worker
#: share of spool.max_bytes must still hold a segment.
MAX_WORKERS: Final = 64


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names it and says what to do."""


class _NoValue:
    """The value of Sources.name's `value` when the message shows none."""


NO_VALUE: Final = _NoValue()


@dataclass
class Sources:
    """Where each setting's value came from, and the one rule for naming a setting in a message: by the
    environment variable that set it (its setting in parentheses), else by its key in the file, else as the
    default. An operator who set a value through a Helm chart's env finds it there, not in the file."""

    #: The YAML file's path as given; empty without one.
    file: str = ""
    #: Every setting path (`server.port`, `webhooks[0].tokens`) the file holds.
    in_file: frozenset[str] = frozenset()
    #: Setting path -> the environment variable that set it; filled while the configuration is read.
    variables: dict[str, str] = field(default_factory=dict)

    def record(self, path: str, variable: str) -> None:
        self.variables[path] = variable

    def variable(self, path: str) -> str | None:
        return self.variables.get(path)

    def name(self, path: str, value: object = NO_VALUE, secret: bool = False) -> str:
        """`path` (with its value, unless it is a secret) named by where it came from."""
        if value is NO_VALUE:
            shown = ""
        elif secret:
            shown = f" = (a {type(value).__name__}, value not shown)"
        else:
            shown = f" = {value:g}" if isinstance(value, float) else f" = {value!r}"
        variable = self.variables.get(path)
        if variable is not None:
            return f"{variable}{shown} ({path})"
        if path in self.in_file:
            return f"{path}{shown} in {self.file}"
        return f"{path}{shown} (the default)"

    def error(self, path: str, problem: str, value: object = NO_VALUE, secret: bool = False) -> ConfigError:
        return ConfigError(f"{self.name(path, value, secret)}: {problem}")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    port: int = 8443
    ops_host: str = "0.0.0.0"
    ops_port: int = 9464
    tls_cert_file: str = ""
    tls_key_file: str = ""
    public_base_url: str = ""
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    limit_concurrency: int = 1000
    #: Open connections per worker on the webhook listener (bridge/connection_limit.py): past it the one
    #: idle longest is closed. About 40 KiB each once a TLS handshake began (4 KiB before), so 4,096 bound
    #: that memory to about 170 MB a worker.
    max_connections: int = 4096
    keep_alive_timeout_seconds: float = 5.0
    header_read_timeout_seconds: float = 10.0
    body_read_timeout_seconds: float = 10.0
    tls_handshake_timeout_seconds: float = 5.0
    max_header_bytes: int = 16 * 1024
    max_header_fields: int = 100
    unauthenticated_limit_concurrency: int = 16
    unauthenticated_body_timeout_seconds: float = 2.0
    shutdown_grace_seconds: float = 20.0
    #: Processes serving the webhook listener: a number, or "auto" for one per CPU of the container's
    #: limit (bridge/cpus.py). 1 is the single-process bridge, no fork.
    workers: int | Literal["auto"] = 1

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file)


@dataclass(frozen=True)
class SignatureSettings:
    created_window_seconds: int = 300


@dataclass(frozen=True)
class WebhookSettings:
    name: str
    tokens: tuple[str, ...] = ()
    public_url: str = ""
    legacy_sha2_signature: bool = False


@dataclass(frozen=True)
class TopicSettings:
    name: str
    format: str = "native"


def _default_topics() -> dict[str, TopicSettings]:
    return {key: TopicSettings(name=f"idaas.{key}") for key in TOPIC_KEYS}


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    client_properties: dict[str, str] = field(default_factory=dict)
    #: Where the settings came from (the whole configuration's; Settings.sources is the same object): Kafka
    #: clients are built from these settings alone, and name a refused property by where it was set.
    sources: Sources = field(default_factory=Sources, repr=False, compare=False)
    ack_deadline_seconds: float = 1.5
    statistics_interval_seconds: float = 15.0
    topics: dict[str, TopicSettings] = field(default_factory=_default_topics)
    max_record_bytes: int = 2 * 1024 * 1024


def largest_deadletter_bytes(max_body_bytes: int) -> int:
    """The largest dead-letter record a body of `max_body_bytes` can make: the body base64-encoded
    (4 bytes per 3), which the router falls back to whenever the UTF-8 text would not fit."""
    return 4 * -(-max_body_bytes // 3) + DEADLETTER_OVERHEAD_BYTES


@dataclass(frozen=True)
class DedupSettings:
    ttl_seconds: float = 900.0
    max_entries: int = 200_000


@dataclass(frozen=True)
class SpoolSettings:
    path: str = "/var/lib/idaas-bridge/spool"
    max_bytes: int = 1024 * 1024 * 1024
    segment_bytes: int = 64 * 1024 * 1024
    ack_mode: AckMode = "kafka_first"


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"


@dataclass(frozen=True)
class AdminApiSettings:
    """The IDaaS Administration API application the watcher, re-enable and backfill use."""

    #: Empty: the whole Admin API feature is off (the other settings are still validated and shown).
    hostname: str = ""
    application_id: str = ""
    shared_secret: str = field(default="", repr=False)
    #: CA bundle that verifies the tenant's certificate (a TLS-inspecting proxy); empty = the system's.
    ca_file: str = ""
    request_timeout_seconds: float = 10.0
    webhook_poll_seconds: float = 300.0
    #: Poll at once when no delivery arrived for this long (a silent webhook may be disabled).
    quiet_poll_seconds: float = 3600.0
    #: Opt-in: re-enable a webhook IDaaS reports disabled (not expired) while the bridge is healthy.
    reenable: bool = False
    #: Before re-enabling, have IDaaS send its test delivery and wait this long for it to arrive (0 = skip
    #: the test).
    reenable_test_wait_seconds: float = 60.0
    reenable_max_per_hour: int = 3
    #: Backfill the gap automatically once a webhook IDaaS reported not enabled is enabled again (re-enabled
    #: by the bridge or by an admin). On by default: it only reads the audit log (REPORTS:VIEW), publishes
    #: only what is not in Kafka already, marked as backfilled; without it the gap's events are lost.
    backfill_automatic: bool = True
    #: Also backfill the bridge's own downtime at start-up: IDaaS retries no refused connection or timeout,
    #: so a crash or restart loses what IDaaS sent meanwhile even when the webhook stays enabled. Takes
    #: effect only with backfill_automatic (it runs in that machinery), so on by default wherever that is:
    #: the same cost and risk (reads the audit log, publishes only what Kafka lacks).
    backfill_downtime: bool = True
    #: The longest gap backfilled automatically (the part nearest the recovery); longer ones are logged.
    backfill_max_gap_seconds: float = 3 * 24 * 3600.0
    #: Widens the gap on both sides: IDaaS's clock against the bridge's, and its delivery delay.
    backfill_margin_seconds: float = 60.0
    #: How far the audit log may lag behind events: a backfill reads up to this long before now at the latest,
    #: and the automatic one waits this long after the gap's end before reading it.
    backfill_audit_lag_seconds: float = 120.0
    #: Also publish the raw audit records a backfill reads to this topic; empty = off.
    audit_topic: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.hostname)


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    signature: SignatureSettings
    webhooks: tuple[WebhookSettings, ...]
    kafka: KafkaSettings
    dedup: DedupSettings
    spool: SpoolSettings
    logging: LoggingSettings
    #: The Admin API feature is off unless `admin_api.enabled` (a hostname is set).
    admin_api: AdminApiSettings = field(default_factory=AdminApiSettings)
    sources: Sources = field(default_factory=Sources, repr=False, compare=False)

    def webhook(self, name: str) -> WebhookSettings | None:
        return next((hook for hook in self.webhooks if hook.name == name), None)

    def topic_settings(self) -> dict[str, str]:
        """The setting of every topic the bridge produces to (the configured ones, and the raw audit topic
        when set) -> the topic's name."""
        names = {f"kafka.topics.{key}.name": topic.name for key, topic in self.kafka.topics.items()}
        if self.admin_api.enabled and self.admin_api.audit_topic:
            names["admin_api.audit_topic"] = self.admin_api.audit_topic
        return names

    def topic_names(self) -> list[str]:
        """Every topic the bridge produces to, once each."""
        return list(dict.fromkeys(self.topic_settings().values()))

    def callback_url(self, hook: WebhookSettings) -> str:
        """The URL IDaaS calls for `hook` (its public_url, else server.public_base_url + /webhooks/<name>);
        empty when neither is set."""
        if hook.public_url:
            return hook.public_url
        base = self.server.public_base_url
        return f"{base.rstrip('/')}/webhooks/{hook.name}" if base else ""


# --- reading ------------------------------------------------------------------------------------------


class _Section:
    """Typed access to one mapping of the YAML, reporting errors through Sources."""

    def __init__(self, path: str, raw: Any, sources: Sources, secret: bool = False) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise sources.error(path, "expected a mapping", raw, secret)
        self.path = path
        self.sources = sources
        self.raw: dict[str, Any] = dict(raw)
        self.used: set[str] = set()

    def child(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _take(self, key: str, default: Any) -> Any:
        self.used.add(key)
        value = self.raw.get(key, default)
        return default if value is None else value

    def _fail(self, key: str, value: Any, expected: str, secret: bool = False) -> ConfigError:
        """The error for a wrong value; a secret's value is never shown, only its type."""
        return self.sources.error(self.child(key), expected, value, secret)

    def string(self, key: str, default: str) -> str:
        value = self._take(key, default)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self._fail(key, value, "expected a string")
        return str(value)

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self._take(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, value, "expected a whole number")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise self._fail(key, value, f"must be at least {minimum}{upper}")
        return value

    def number(self, key: str, default: float, above: float, below: float | None = None) -> float:
        value = self._take(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, value, "expected a number")
        if value <= above or (below is not None and value >= below):
            upper = f" and below {below}" if below is not None else ""
            raise self._fail(key, value, f"must be above {above}{upper}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._take(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, value, "expected true or false")
        return value

    def strings(self, key: str, secret: bool = False) -> tuple[str, ...]:
        value = self._take(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self._fail(key, value, "expected a list of strings", secret)
        return tuple(value)

    def section(self, key: str, secret: bool = False) -> _Section:
        return _Section(self.child(key), self._take(key, {}), self.sources, secret)

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            names = ", ".join(self.sources.name(self.child(key)) for key in unknown)
            raise ConfigError(
                f"unknown setting(s) {names}: check the spelling against docs/configuration.md (every "
                "setting and its variable)"
            )


def _url(section: _Section, key: str) -> str:
    value = section.string(key, "")
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise section._fail(
                key, value, "expected an absolute URL such as https://hooks.example.com/idaas"
            )
    return value


def _server(section: _Section) -> ServerSettings:
    settings = ServerSettings(
        host=section.string("host", ServerSettings.host),
        port=section.integer("port", ServerSettings.port, 1, 65535),
        ops_host=section.string("ops_host", ServerSettings.ops_host),
        ops_port=section.integer("ops_port", ServerSettings.ops_port, 1, 65535),
        tls_cert_file=section.string("tls_cert_file", ""),
        tls_key_file=section.string("tls_key_file", ""),
        public_base_url=_url(section, "public_base_url"),
        trusted_proxies=section.strings("trusted_proxies"),
        max_body_bytes=section.integer("max_body_bytes", ServerSettings.max_body_bytes, 1024),
        limit_concurrency=section.integer("limit_concurrency", ServerSettings.limit_concurrency, 1),
        max_connections=section.integer("max_connections", ServerSettings.max_connections, 1),
        keep_alive_timeout_seconds=section.number(
            "keep_alive_timeout_seconds", ServerSettings.keep_alive_timeout_seconds, 0
        ),
        header_read_timeout_seconds=section.number(
            "header_read_timeout_seconds", ServerSettings.header_read_timeout_seconds, 0
        ),
        body_read_timeout_seconds=section.number(
            "body_read_timeout_seconds", ServerSettings.body_read_timeout_seconds, 0
        ),
        tls_handshake_timeout_seconds=section.number(
            "tls_handshake_timeout_seconds", ServerSettings.tls_handshake_timeout_seconds, 0
        ),
        max_header_bytes=section.integer(
            "max_header_bytes", ServerSettings.max_header_bytes, MIN_HEADER_BYTES, MAX_HEADER_BYTES
        ),
        max_header_fields=section.integer(
            "max_header_fields", ServerSettings.max_header_fields, MIN_HEADER_FIELDS, MAX_HEADER_FIELDS
        ),
        unauthenticated_limit_concurrency=section.integer(
            "unauthenticated_limit_concurrency", ServerSettings.unauthenticated_limit_concurrency, 1
        ),
        unauthenticated_body_timeout_seconds=section.number(
            "unauthenticated_body_timeout_seconds", ServerSettings.unauthenticated_body_timeout_seconds, 0
        ),
        shutdown_grace_seconds=section.number(
            "shutdown_grace_seconds", ServerSettings.shutdown_grace_seconds, 0
        ),
        workers=_workers(section),
    )
    section.done()
    sources = section.sources
    if settings.ops_port == settings.port:
        raise sources.error(
            "server.ops_port",
            f"must differ from {sources.name('server.port')} (the operations endpoints /metrics, /readyz "
            "and /healthz have their own listener)",
            settings.ops_port,
        )
    if settings.max_connections <= 2 * settings.limit_concurrency:
        concurrency = sources.name("server.limit_concurrency", settings.limit_concurrency)
        raise sources.error(
            "server.max_connections",
            f"must be more than twice {concurrency}: up to that many connections can have a request in "
            "progress, and a connection past the limit closes only an idle one",
            settings.max_connections,
        )
    for proxy in settings.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise sources.error(
                "server.trusted_proxies", f"{proxy!r} is not an IP address or CIDR network"
            ) from None
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise ConfigError(
            f"{sources.name('server.tls_cert_file')} and {sources.name('server.tls_key_file')} must be set "
            "together (both empty = plain HTTP)"
        )
    for key in ("tls_cert_file", "tls_key_file"):
        path = getattr(settings, key)
        if path and not Path(path).is_file():
            raise sources.error(f"server.{key}", "no such file", path)
    return settings


def _workers(section: _Section) -> int | Literal["auto"]:
    value = section._take("workers", ServerSettings.workers)
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise section._fail(
            "workers",
            value,
            f"expected a whole number from 1 to {MAX_WORKERS}, or auto (one per CPU of the CPU limit)",
        )
    return value


def env_name(webhook: str) -> str:
    """The environment variable that holds a webhook's tokens (the mapping is documented above)."""
    return f"{WEBHOOK_ENV_PREFIX}{re.sub(r'[^A-Za-z0-9]', '_', webhook).upper()}_TOKENS"


def _webhooks(raw: Any, environ: Mapping[str, str], sources: Sources) -> tuple[WebhookSettings, ...]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        # Not the value itself: a misindented file may have put a token there.
        raise ConfigError(f"webhooks: expected a list of {{name: ...}} entries, got a {type(raw).__name__}")
    if not raw:
        raise ConfigError("webhooks: no webhook configured; add one entry per IDaaS webhook (name: ...)")
    if len(raw) > MAX_WEBHOOKS:
        raise ConfigError(f"webhooks: {len(raw)} configured; IDaaS allows at most {MAX_WEBHOOKS} per tenant")
    hooks: list[WebhookSettings] = []
    for index, entry in enumerate(raw):
        section = _Section(f"webhooks[{index}]", entry, sources, secret=True)
        name = section.string("name", "")
        if not WEBHOOK_NAME.match(name):
            raise section._fail(
                "name",
                name,
                "use 1-63 letters, digits, '-', '_' or '.' (it becomes the URL path /webhooks/<name>)",
            )
        if any(hook.name == name for hook in hooks):
            raise section._fail("name", name, "duplicate webhook name")
        variable = env_name(name)
        for other, hook in enumerate(hooks):
            if env_name(hook.name) == variable:
                raise ConfigError(
                    f"webhooks[{index}].name = {name!r} and webhooks[{other}].name = {hook.name!r} would "
                    f"share the token variable {variable} (names that differ only in case or in '-', '_' "
                    "and '.' map to the same variable): rename one of them"
                )
        from_file = section.strings("tokens", secret=True)
        from_env = tuple(token.strip() for token in environ.get(variable, "").split(",") if token.strip())
        tokens = from_env or from_file
        if not tokens:
            raise ConfigError(
                f"webhook {name!r} has no token: set {variable} to the token IDaaS showed when the webhook "
                "was created (two comma-separated tokens during rotation)"
            )
        if from_env:
            sources.record(f"webhooks[{index}].tokens", variable)
        source = sources.name(f"webhooks[{index}].tokens")
        if len(tokens) > 2:
            raise ConfigError(
                f"webhook {name!r}: {len(tokens)} tokens given in {source}; at most 2 (old and new)"
            )
        for position, token in enumerate(tokens, 1):
            if len(token) < MIN_TOKEN_LENGTH:
                raise ConfigError(
                    f"webhook {name!r}: token {position} of {len(tokens)} in {source} has {len(token)} "
                    f"characters; at least {MIN_TOKEN_LENGTH} are required (use the token IDaaS generated "
                    "for the webhook)"
                )
        hooks.append(
            WebhookSettings(
                name=name,
                tokens=tokens,
                public_url=_url(section, "public_url"),
                legacy_sha2_signature=section.boolean("legacy_sha2_signature", False),
            )
        )
        section.done()
    return tuple(hooks)


def _kafka(section: _Section, environ: Mapping[str, str]) -> KafkaSettings:
    sources = section.sources
    client_section = section.section("client_properties", secret=True)
    client: dict[str, str] = {}
    for key, value in client_section.raw.items():
        if isinstance(value, Mapping | list):  # a nested mapping would reach librdkafka as its Python text
            raise client_section._fail(
                str(key), value, "expected a string (a librdkafka property's value)", True
            )
        client[str(key)] = str(value)
    for variable, value in environ.items():
        if variable.startswith(KAFKA_CLIENT_ENV_PREFIX):
            key = variable[len(KAFKA_CLIENT_ENV_PREFIX) :].lower().replace("_", ".")
            client[key] = value
            sources.record(f"kafka.client_properties.{key}", variable)
    owned = sorted(client.keys() & BRIDGE_OWNED_CLIENT_PROPERTIES.keys())
    if owned:
        key = owned[0]
        raise sources.error(
            f"kafka.client_properties.{key}",
            f"{BRIDGE_OWNED_CLIENT_PROPERTIES[key]} (the bridge sets {key} itself; remove it)",
        )
    topics_section = section.section("topics")
    topics: dict[str, TopicSettings] = {}
    for key in TOPIC_KEYS:
        entry = topics_section.section(key)
        topic = TopicSettings(
            name=entry.string("name", f"idaas.{key}"),
            format=entry.string("format", "native"),
        )
        entry.done()
        if topic.format not in FORMATS:
            raise entry._fail("format", topic.format, f"choose one of {', '.join(sorted(FORMATS))}")
        if key == "deadletter" and topic.format != "native":
            raise entry._fail("format", topic.format, "the dead-letter topic is always native JSON")
        topics[key] = topic
    topics_section.done()
    settings = KafkaSettings(
        bootstrap_servers=section.string("bootstrap_servers", KafkaSettings.bootstrap_servers),
        client_properties=client,
        sources=sources,
        ack_deadline_seconds=section.number(
            "ack_deadline_seconds", KafkaSettings.ack_deadline_seconds, 0, MAX_ACK_DEADLINE_SECONDS
        ),
        statistics_interval_seconds=section.number(
            "statistics_interval_seconds", KafkaSettings.statistics_interval_seconds, 0
        ),
        topics=topics,
        max_record_bytes=section.integer(
            "max_record_bytes", KafkaSettings.max_record_bytes, MIN_RECORD_BYTES
        ),
    )
    section.done()
    if not settings.bootstrap_servers:
        raise sources.error("kafka.bootstrap_servers", "give host:port[,host:port...]", "")
    return settings


def _spool(section: _Section) -> SpoolSettings:
    ack_mode = section.string("ack_mode", SpoolSettings.ack_mode)
    if ack_mode not in ("kafka_first", "spool_first"):
        raise section._fail("ack_mode", ack_mode, "choose kafka_first or spool_first")
    segment_bytes = section.integer("segment_bytes", SpoolSettings.segment_bytes, 64 * 1024)
    settings = SpoolSettings(
        path=section.string("path", SpoolSettings.path),
        max_bytes=section.integer("max_bytes", SpoolSettings.max_bytes, segment_bytes),
        segment_bytes=segment_bytes,
        ack_mode="spool_first" if ack_mode == "spool_first" else "kafka_first",
    )
    section.done()
    return settings


def _admin_api(section: _Section, environ: Mapping[str, str]) -> AdminApiSettings:
    """The Admin API settings; the feature is off (no secret needed) while `admin_api.hostname` is empty."""
    if "shared_secret" in section.raw:
        raise section.sources.error(
            "admin_api.shared_secret",
            f"the shared secret never goes in the file (nor in an IDAAS_BRIDGE_ADMIN_API__* override); set "
            f"{ADMIN_API_SECRET_ENV} instead (value not shown)",
        )
    hostname = section.string("hostname", "")
    application_id = section.string("application_id", "")
    defaults = AdminApiSettings()
    settings = AdminApiSettings(
        ca_file=section.string("ca_file", ""),
        request_timeout_seconds=section.number(
            "request_timeout_seconds", defaults.request_timeout_seconds, 0
        ),
        webhook_poll_seconds=section.number("webhook_poll_seconds", defaults.webhook_poll_seconds, 0),
        quiet_poll_seconds=section.number("quiet_poll_seconds", defaults.quiet_poll_seconds, 0),
        reenable=section.boolean("reenable", defaults.reenable),
        reenable_test_wait_seconds=section.number(
            "reenable_test_wait_seconds", defaults.reenable_test_wait_seconds, -1
        ),
        reenable_max_per_hour=section.integer("reenable_max_per_hour", defaults.reenable_max_per_hour, 1, 60),
        backfill_automatic=section.boolean("backfill_automatic", defaults.backfill_automatic),
        backfill_downtime=section.boolean("backfill_downtime", defaults.backfill_downtime),
        backfill_max_gap_seconds=section.number(
            "backfill_max_gap_seconds", defaults.backfill_max_gap_seconds, 0
        ),
        backfill_margin_seconds=section.number(
            "backfill_margin_seconds", defaults.backfill_margin_seconds, -1
        ),
        backfill_audit_lag_seconds=section.number(
            "backfill_audit_lag_seconds", defaults.backfill_audit_lag_seconds, -1
        ),
        audit_topic=section.string("audit_topic", defaults.audit_topic),
    )
    section.done()
    if settings.webhook_poll_seconds < MIN_WEBHOOK_POLL_SECONDS:
        raise section._fail(
            "webhook_poll_seconds",
            settings.webhook_poll_seconds,
            f"must be at least {MIN_WEBHOOK_POLL_SECONDS:g} (webhook state changes rarely; the bridge also "
            "polls at once when its own failure streak warns or deliveries stop)",
        )
    if settings.reenable_test_wait_seconds < 0:
        raise section._fail(
            "reenable_test_wait_seconds",
            settings.reenable_test_wait_seconds,
            "must be 0 (re-enable without a test delivery) or more",
        )
    for key in ("backfill_margin_seconds", "backfill_audit_lag_seconds"):
        if getattr(settings, key) < 0:
            raise section._fail(key, getattr(settings, key), "must be 0 or more")
    if not hostname:
        if application_id:
            raise ConfigError(
                f"{section.sources.name('admin_api.application_id')} is set but "
                f"{section.sources.name('admin_api.hostname')} is empty: give the tenant's hostname too, or "
                "clear application_id to turn the Admin API feature off"
            )
        return settings
    if not HOSTNAME.match(hostname):
        raise section._fail(
            "hostname",
            hostname,
            "give the tenant's hostname only, as in the credentials file IDaaS let you download "
            "(e.g. mycompany.us.trustedauth.com), without https:// or a path",
        )
    if not application_id:
        raise section._fail(
            "application_id",
            application_id,
            "give the applicationId of the Administration API application (Security > Applications in the "
            f"IDaaS portal), or clear {section.sources.name('admin_api.hostname')}",
        )
    secret = environ.get(ADMIN_API_SECRET_ENV, "").strip()
    if not secret:
        raise ConfigError(
            f"{section.sources.name('admin_api.hostname')} is set but {ADMIN_API_SECRET_ENV} is not: set it "
            f"to the sharedSecret of application {application_id!r}, or clear admin_api.hostname to turn the "
            "feature off"
        )
    if settings.ca_file and not Path(settings.ca_file).is_file():
        raise section._fail("ca_file", settings.ca_file, "no such file")
    return replace(settings, hostname=hostname, application_id=application_id, shared_secret=secret)


def _check_deadletter_fits(settings: Settings) -> None:
    """Every authenticated delivery must fit in Kafka at least as a dead letter, or it could only be lost."""
    max_body, max_record = settings.server.max_body_bytes, settings.kafka.max_record_bytes
    largest = largest_deadletter_bytes(max_body)
    if largest > max_record:
        fitting_body = (max_record - DEADLETTER_OVERHEAD_BYTES) // 4 * 3
        raise settings.sources.error(
            "server.max_body_bytes",
            f"the dead-letter record of a body that large can reach {largest} bytes, above "
            f"{settings.sources.name('kafka.max_record_bytes', max_record)}; lower server.max_body_bytes to "
            f"at most {fitting_body} or raise kafka.max_record_bytes to at least {largest}",
            max_body,
        )


#: The variables Kubernetes puts into every pod of a namespace for each Service in it (unless the pod sets
#: `enableServiceLinks: false`, as the chart does): a Service named `idaas-bridge…` gives the bridge's own pod
#: `IDAAS_BRIDGE_…_SERVICE_HOST`, `…_SERVICE_PORT[_<NAME>]`, `…_PORT` = `tcp://<ip>:<port>` and
#: `…_PORT_<port>_<PROTO>[_ADDR|_PORT|_PROTO]`. Not typos: refusing them would crash-loop every such pod.
#: `…_PORT` alone is one only with its URL value, so that `IDAAS_BRIDGE_SERVER_PORT=9000` stays a typo.
_SERVICE_LINK: Final = re.compile(
    r"([A-Z0-9_]+_)?(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?)"
)
_SERVICE_LINK_URL: Final = re.compile(r"(tcp|udp|sctp)://\S+")


def _service_link(variable: str, value: str) -> bool:
    """Whether a variable with the prefix is one Kubernetes sets for a Service (`_SERVICE_LINK`)."""
    name = variable[len(ENV_PREFIX) :]
    if _SERVICE_LINK.fullmatch(name):
        return True
    return (name == "PORT" or name.endswith("_PORT")) and _SERVICE_LINK_URL.fullmatch(value) is not None


def _read_elsewhere(variable: str) -> bool:
    """Whether a variable with the prefix is one of the families read as a whole, not as an override."""
    return (
        variable in (CONFIG_ENV, ADMIN_API_SECRET_ENV)
        or variable.startswith(KAFKA_CLIENT_ENV_PREFIX)
        or (variable.startswith(WEBHOOK_ENV_PREFIX) and variable.endswith("_TOKENS"))
    )


def _unknown_variable(variable: str) -> ConfigError:
    """A variable with the prefix that the bridge does not read: a typo, which would otherwise go unnoticed
    (the setting it meant keeping its value from the file). Its value is not shown: it may be a secret."""
    rest = variable[len(ENV_PREFIX) :]
    sections = (part.name for part in fields(Settings) if part.name not in ("webhooks", "sources"))
    section = next((name for name in sections if rest.lower().startswith(f"{name}_")), None)
    guess = f"{ENV_PREFIX}{section.upper()}__{rest[len(section) + 1 :]}" if section else None
    hint = f" (did you mean {guess}?)" if guess else ""
    return ConfigError(
        f"{variable} is not a variable the bridge reads{hint}: a setting is overridden by "
        f"{ENV_PREFIX}<SECTION>__<KEY>, with two underscores (e.g. {ENV_PREFIX}SERVER__PORT); "
        "docs/configuration.md lists every variable. Correct its name or remove it"
    )


def _apply_env_overrides(document: dict[str, Any], environ: Mapping[str, str], sources: Sources) -> None:
    """`IDAAS_BRIDGE_SECTION__KEY=value` sets document[section][key] (deeper paths use more `__`) and records
    where it came from; every other variable with the prefix must be one the bridge reads."""
    for variable, value in environ.items():
        if not variable.startswith(ENV_PREFIX) or _read_elsewhere(variable):
            continue
        if "__" not in variable:
            if _service_link(variable, value):
                continue
            raise _unknown_variable(variable)
        path = [part.lower() for part in variable[len(ENV_PREFIX) :].split("__")]
        target = document
        for depth, part in enumerate(path[:-1]):
            if part not in target:  # a mapping this variable makes: name it if it turns out unknown
                sources.record(".".join(path[: depth + 1]), variable)
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{variable}: {'.'.join(path)} does not name a setting inside a mapping")
            target = child
        sources.record(".".join(path), variable)
        try:
            target[path[-1]] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            raise ConfigError(
                f"{variable}: not a valid YAML scalar (quote it, e.g. '\"...\"'); the value is not shown "
                "as it may be a secret"
            ) from None


def _setting_paths(node: Any, path: str = "") -> Iterator[str]:
    """Every setting path in a YAML document: `server`, `server.port`, `webhooks[0]`, `webhooks[0].name`."""
    if path:
        yield path
    if isinstance(node, Mapping):
        for key, child in node.items():
            yield from _setting_paths(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _setting_paths(child, f"{path}[{index}]")


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read, override and validate the whole configuration, or raise ConfigError."""
    environ = os.environ if environ is None else environ
    config_path = path or environ.get(CONFIG_ENV)
    document: dict[str, Any] = {}
    if config_path:
        try:
            loaded = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {str(config_path)!r} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"config file {str(config_path)!r} is not valid YAML: {yaml_problem(exc)}"
            ) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(config_path)!r}: the top level must be a mapping")
        document = loaded or {}
    sources = Sources(file=str(config_path or ""), in_file=frozenset(_setting_paths(document)))
    _apply_env_overrides(document, environ, sources)
    root = _Section("", document, sources)
    signature = root.section("signature")
    dedup = root.section("dedup")
    logging_section = root.section("logging")
    root.used.add("webhooks")
    settings = Settings(
        server=_server(root.section("server")),
        signature=SignatureSettings(
            created_window_seconds=signature.integer("created_window_seconds", 300, 1)
        ),
        webhooks=_webhooks(document.get("webhooks"), environ, sources),
        kafka=_kafka(root.section("kafka"), environ),
        dedup=DedupSettings(
            ttl_seconds=dedup.number("ttl_seconds", DedupSettings.ttl_seconds, 0),
            max_entries=dedup.integer("max_entries", DedupSettings.max_entries, 1),
        ),
        spool=_spool(root.section("spool")),
        logging=LoggingSettings(level=logging_section.string("level", "INFO").upper()),
        admin_api=_admin_api(root.section("admin_api"), environ),
        sources=sources,
    )
    for section in (root, signature, dedup, logging_section):
        section.done()
    _check_deadletter_fits(settings)
    audit_topic = settings.admin_api.audit_topic
    taken = {topic.name: key for key, topic in settings.kafka.topics.items()}
    if audit_topic in taken:
        raise sources.error(
            "admin_api.audit_topic",
            f"the same topic as {sources.name(f'kafka.topics.{taken[audit_topic]}.name')}: raw audit records "
            "need a topic of their own (e.g. idaas.audit)",
            audit_topic,
        )
    if settings.admin_api.enabled:
        for index, hook in enumerate(settings.webhooks):
            if not settings.callback_url(hook):
                raise ConfigError(
                    f"webhooks[{index}] ({hook.name!r}) has no public URL, which admin_api needs to find the "
                    f"webhook in IDaaS by its callback URL: set webhooks[{index}].public_url or "
                    "server.public_base_url to the URL IDaaS calls"
                )
    if settings.logging.level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise sources.error("logging.level", "choose DEBUG, INFO, WARNING or ERROR", settings.logging.level)
    return settings


def yaml_problem(error: yaml.YAMLError) -> str:
    """What is wrong and where, without PyYAML's excerpt of the offending line (which may hold a token)."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"{error.problem or error.context or 'syntax error'}{where}"
    return type(error).__name__


def secret_property(name: str, from_environment: bool) -> bool:
    """Whether check-config masks a Kafka client property: every one set through the environment (that is
    where secrets belong), every SASL/SSL one not known to be public, and any whose name says secret."""
    lower = name.lower()
    if from_environment or any(part in lower for part in SECRET_KEY_PARTS):
        return True
    return lower.startswith(("sasl.", "ssl.")) and lower not in PUBLIC_SECURITY_PROPERTIES


def set_in_environment(settings: KafkaSettings, key: str) -> bool:
    """Whether client property `key` was set by an environment variable (any: IDAAS_BRIDGE_KAFKA_CLIENT_*
    or an IDAAS_BRIDGE_KAFKA__CLIENT_PROPERTIES__* override)."""
    return settings.sources.variable(f"kafka.client_properties.{key}") is not None


def describe(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, with tokens and secrets masked (for check-config)."""
    return {
        "server": {key: getattr(settings.server, key) for key in ServerSettings.__dataclass_fields__},
        "signature": {"created_window_seconds": settings.signature.created_window_seconds},
        "webhooks": [
            {
                "name": hook.name,
                "tokens": [f"*** ({len(token)} chars)" for token in hook.tokens],
                "public_url": hook.public_url,
                "legacy_sha2_signature": hook.legacy_sha2_signature,
            }
            for hook in settings.webhooks
        ],
        "kafka": {
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "client_properties": {
                key: "***" if secret_property(key, set_in_environment(settings.kafka, key)) else value
                for key, value in settings.kafka.client_properties.items()
            },
            "ack_deadline_seconds": settings.kafka.ack_deadline_seconds,
            "statistics_interval_seconds": settings.kafka.statistics_interval_seconds,
            "max_record_bytes": settings.kafka.max_record_bytes,
            "topics": {
                key: {"name": topic.name, "format": topic.format}
                for key, topic in settings.kafka.topics.items()
            },
        },
        "dedup": {"ttl_seconds": settings.dedup.ttl_seconds, "max_entries": settings.dedup.max_entries},
        "spool": {key: getattr(settings.spool, key) for key in SpoolSettings.__dataclass_fields__},
        "logging": {"level": settings.logging.level},
        "admin_api": {
            key: "***" if key == "shared_secret" and value else value
            for key, value in (
                (key, getattr(settings.admin_api, key)) for key in AdminApiSettings.__dataclass_fields__
            )
        },
    }
