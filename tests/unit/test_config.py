"""Configuration: defaults, environment overrides, secrets handling and precise start-up errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bridge.config import ConfigError, describe, env_name, load_settings
from bridge.publish.kafka import client_config, producer_config

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "dev-token-0123456789"
TOKEN_ENV = {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": TOKEN}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(text)
    return path


def test_the_shipped_config_file_loads_with_a_token_from_the_environment() -> None:
    settings = load_settings(ROOT / "config/bridge.yaml", TOKEN_ENV)
    assert settings.webhooks[0].name == "dev" and settings.webhooks[0].tokens == (TOKEN,)
    assert settings.kafka.topics["user"].name == "idaas.user"
    assert settings.kafka.ack_deadline_seconds == 1.5


def test_environment_overrides_nested_settings_with_yaml_types() -> None:
    env = TOKEN_ENV | {
        "IDAAS_BRIDGE_KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        "IDAAS_BRIDGE_KAFKA__ACK_DEADLINE_SECONDS": "0.8",
        "IDAAS_BRIDGE_SERVER__PORT": "9000",
        "IDAAS_BRIDGE_KAFKA__TOPICS__USER__FORMAT": "native",
        "IDAAS_BRIDGE_KAFKA_CLIENT_SASL_PASSWORD": "pw",
    }
    settings = load_settings(ROOT / "config/bridge.yaml", env)
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.kafka.ack_deadline_seconds == 0.8
    assert settings.server.port == 9000
    assert settings.kafka.client_properties["sasl.password"] == "pw"


def test_two_tokens_for_rotation_and_env_name_rules() -> None:
    assert env_name("eu-prod.1") == "IDAAS_BRIDGE_WEBHOOK_EU_PROD_1_TOKENS"
    env = {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": "old-token-0123456789, new-token-0123456789"}
    settings = load_settings(ROOT / "config/bridge.yaml", env)
    assert settings.webhooks[0].tokens == ("old-token-0123456789", "new-token-0123456789")


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("eu--prod", "IDAAS_BRIDGE_WEBHOOK_EU__PROD_TOKENS"),
        ("prod-", "IDAAS_BRIDGE_WEBHOOK_PROD__TOKENS"),
        ("eu.prod_2", "IDAAS_BRIDGE_WEBHOOK_EU_PROD_2_TOKENS"),
    ],
)
def test_every_valid_webhook_name_gets_its_token_from_its_documented_variable(
    tmp_path: Path, name: str, variable: str
) -> None:
    # A double underscore in a token variable is not a <SECTION>__<KEY> override.
    settings = load_settings(write(tmp_path, f"webhooks: [{{name: {name!r}}}]"), {variable: TOKEN})
    assert env_name(name) == variable
    assert settings.webhooks[0].tokens == (TOKEN,)


def test_bridge_owned_properties_reach_no_client_even_past_the_config_check() -> None:
    settings = load_settings(ROOT / "config/bridge.yaml", TOKEN_ENV)
    sneaked = replace(settings.kafka, client_properties={"bootstrap.servers": "evil:9092", "acks": "0"})
    for config in (client_config(sneaked), producer_config(sneaked, 1.0)):
        assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert producer_config(sneaked, 1.0)["acks"] == "all"


def test_check_config_output_masks_tokens_and_secrets() -> None:
    env = TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA_CLIENT_SASL_PASSWORD": "hunter2"}
    text = repr(describe(load_settings(ROOT / "config/bridge.yaml", env)))
    assert TOKEN not in text and "hunter2" not in text
    assert "***" in text


def test_check_config_masks_every_environment_property_and_every_sasl_ssl_secret(tmp_path: Path) -> None:
    in_file = {
        "sasl.oauthbearer.config": "principal=bridge clientSecret=file-secret-1",
        "sasl.oauthbearer.client.secret": "file-secret-2",
        "sasl.oauthbearer.assertion.private.key.passphrase": "file-secret-3",
        "ssl.key.password": "file-secret-4",
        "ssl.keystore.password": "file-secret-5",
        "ssl.key.pem": "file-secret-6",
        "sasl.jaas.config": "file-secret-7",
        "sasl.kerberos.kinit.cmd": "kinit -p x --password file-secret-8",
        "ssl.some.future.setting": "file-secret-9",
        "sasl.username": "bridge-user",
        "sasl.mechanisms": "OAUTHBEARER",
        "ssl.ca.location": "/etc/ca.pem",
        "compression.type": "zstd",
    }
    lines = "".join(f"    {key}: {value!r}\n" for key, value in in_file.items())
    path = write(tmp_path, f"webhooks: [{{name: dev}}]\nkafka:\n  client_properties:\n{lines}")
    env = TOKEN_ENV | {
        "IDAAS_BRIDGE_KAFKA_CLIENT_SASL_PASSWORD": "env-secret-1",
        "IDAAS_BRIDGE_KAFKA_CLIENT_SASL_OAUTHBEARER_CONFIG": "env-secret-2",
        "IDAAS_BRIDGE_KAFKA_CLIENT_CLIENT_ID": "env-secret-3",  # not a secret by name: still masked
    }
    shown = describe(load_settings(path, env))["kafka"]["client_properties"]
    assert not [value for value in shown.values() if "secret" in value]
    assert shown["client.id"] == shown["sasl.password"] == shown["sasl.oauthbearer.config"] == "***"
    assert {key: shown[key] for key in ("sasl.username", "sasl.mechanisms", "ssl.ca.location")} == {
        "sasl.username": "bridge-user",
        "sasl.mechanisms": "OAUTHBEARER",
        "ssl.ca.location": "/etc/ca.pem",
    }
    assert shown["compression.type"] == "zstd"


@pytest.mark.parametrize(
    ("yaml_text", "env", "where"),
    [
        ("webhooks: [{name: dev}]", {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": ""}, None),
        (
            "webhooks: [{name: dev}]",
            {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": "x"},
            "IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS",
        ),
        (
            "webhooks: [{name: dev}]",
            {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": "old-token-0123456789,short-token-15c"},
            "token 2 of 2 in IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS",
        ),
        ("webhooks: [{name: dev, tokens: [short-token-15c]}]", {}, "webhooks[0].tokens"),
    ],
)
def test_tokens_shorter_than_16_characters_are_refused_without_showing_them(
    tmp_path: Path, yaml_text: str, env: dict[str, str], where: str | None
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, yaml_text), env)
    message = str(raised.value)
    assert "webhook 'dev'" in message
    if where is None:  # an empty variable is no token at all
        assert "has no token: set IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS" in message
    else:
        assert where in message and "at least 16" in message
        assert "short-token-15c" not in message and "old-token" not in message
    load_settings(write(tmp_path, "webhooks: [{name: dev, tokens: [sixteen-chars-ok]}]"), {})


@pytest.mark.parametrize(
    ("yaml_text", "env"),
    [
        ("webhooks: [{name: dev, tokens: SECRET-TOKEN-VALUE}]", {}),
        ("webhooks: {name: dev, tokens: [SECRET-TOKEN-VALUE]}", {}),
        ("webhooks: [SECRET-TOKEN-VALUE]", {}),
        ("webhooks: [{name: dev, tokens: [SECRET-TOKEN-VALUE}]", {}),  # broken YAML on the token's line
        ("webhooks: [{name: dev}]\nkafka: {client_properties: SECRET-TOKEN-VALUE}", TOKEN_ENV),
        ("webhooks: [{name: dev}]", TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA__CLIENT_ID": "[SECRET-TOKEN-VALUE"}),
        ("webhooks: [{name: dev}]", TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA__CLIENT_ID": "SECRET-TOKEN-VALUE"}),
        ("webhooks: [{name: dev}]", {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": "SECRET-TOKEN-VALUE,a,b"}),
        ("webhooks: [{name: dev}]", {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKEN": "SECRET-TOKEN-VALUE"}),
        (
            "webhooks: [{name: dev}]",
            TOKEN_ENV | {"IDAAS_BRIDGE_ADMIN_API_SHARED_SECRETT": "SECRET-TOKEN-VALUE"},
        ),
        ("webhooks: [{name: dev}]", TOKEN_ENV | {"IDAAS_BRIDGE_ADMIN_API__SECRET": "SECRET-TOKEN-VALUE"}),
        (
            "webhooks: [{name: dev}]",
            TOKEN_ENV | {"IDAAS_BRIDGE_ADMIN_API__SHARED_SECRET": "SECRET-TOKEN-VALUE"},
        ),
        ("webhooks: [{name: dev}]\nadmin_api: {shared_secret: SECRET-TOKEN-VALUE}", TOKEN_ENV),
        (
            "webhooks: [{name: dev}]",
            TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA__CLIENT_PROPERTIES__SASL__PASSWORD": "SECRET-TOKEN-VALUE"},
        ),
        (
            "webhooks: [{name: dev}]\nkafka: {client_properties: {sasl: {password: SECRET-TOKEN-VALUE}}}",
            TOKEN_ENV,
        ),
        ("webhooks: [{name: dev}]", TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA_CLIENT_ACKS": "SECRET-TOKEN-VALUE"}),
    ],
)
def test_no_config_error_echoes_a_token_or_a_client_property(
    tmp_path: Path, yaml_text: str, env: dict[str, str]
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, yaml_text), env)
    assert "SECRET-TOKEN-VALUE" not in str(raised.value), raised.value


@pytest.mark.parametrize(
    ("yaml_text", "env", "message"),
    [
        ("webhooks: [{name: dev}]", {}, "set IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS"),
        ("webhooks: []", TOKEN_ENV, "no webhook configured"),
        ("webhooks: [{name: 'bad name'}]", TOKEN_ENV, "webhooks[0].name = 'bad name'"),
        ("webhooks: [{name: dev}, {name: dev}]", TOKEN_ENV, "duplicate webhook name"),
        (
            "webhooks: [{name: dev}]\nkafka: {ack_deadline_seconds: 3.5}",
            TOKEN_ENV,
            "kafka.ack_deadline_seconds = 3.5 in FILE: must be above 0 and below 2.5",
        ),
        (
            "webhooks: [{name: dev}]\nkafka: {topics: {user: {format: cef}}}",
            TOKEN_ENV,
            "kafka.topics.user.format = 'cef' in FILE: choose one of",
        ),
        (
            "webhooks: [{name: dev}]\nserver: {prot: 1}",
            TOKEN_ENV,
            "unknown setting(s) server.prot in FILE: check",
        ),
        (
            "webhooks: [{name: dev}]\nserver: {port: 70000}",
            TOKEN_ENV,
            "server.port = 70000 in FILE: must be at least 1 and at most 65535",
        ),
        (
            "webhooks: [{name: dev}]\nserver: {tls_cert_file: /nonexistent.pem, tls_key_file: /k.pem}",
            TOKEN_ENV,
            "no such file",
        ),
        ("webhooks: [{name: dev}]\nserver: {tls_cert_file: a.pem}", TOKEN_ENV, "must be set together"),
        (
            "webhooks: [{name: dev}]\nserver: {port: 9000, ops_port: 9000}",
            TOKEN_ENV,
            "server.ops_port = 9000 in FILE: must differ from server.port in FILE (the operations",
        ),
        (
            "webhooks: [{name: dev}]\nserver: {max_header_bytes: 1024}",
            TOKEN_ENV,
            "server.max_header_bytes = 1024 in FILE: must be at least 4096 and at most 262144",
        ),
        (
            "webhooks: [{name: dev}]\nserver: {max_header_fields: 5000}",
            TOKEN_ENV,
            "server.max_header_fields = 5000 in FILE: must be at least 16 and at most 1000",
        ),
        (
            "webhooks: [{name: dev}]\nserver: {max_connections: 2000}",
            TOKEN_ENV,
            "server.max_connections = 2000 in FILE: must be more than twice server.limit_concurrency = 1000 "
            "(the default): up to that many connections can have a request in progress",
        ),
        (
            "webhooks: [{name: dev}]\nserver: {tls_handshake_timeout_seconds: 0}",
            TOKEN_ENV,
            "server.tls_handshake_timeout_seconds = 0 in FILE: must be above 0",
        ),
        ("webhooks: [{name: dev}]\nserver: {trusted_proxies: [not-an-ip]}", TOKEN_ENV, "not an IP address"),
        ("webhooks: [{name: dev, public_url: 'hooks.example.com'}]", TOKEN_ENV, "expected an absolute URL"),
        ("webhooks: [{name: dev}]\nspool: {ack_mode: yolo}", TOKEN_ENV, "choose kafka_first or spool_first"),
        ("webhooks: [{name: dev}]\nlogging: {level: LOUD}", TOKEN_ENV, "logging.level"),
        ("webhooks: [{name: dev}]\nsurprise: 1", TOKEN_ENV, "unknown setting(s) surprise"),
        ("- just a list", TOKEN_ENV, "top level must be a mapping"),
        ("webhooks: [{name: dev}]", {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": "a,b,c"}, "at most 2"),
        (
            "webhooks: [{name: dev}]\nkafka: {max_record_bytes: 1000000}",
            TOKEN_ENV,
            "server.max_body_bytes = 1048576 (the default): the dead-letter record of a body that large "
            "can reach 1406296 bytes, above kafka.max_record_bytes = 1000000 in FILE; lower "
            "server.max_body_bytes to at most 743856 or raise kafka.max_record_bytes to at least 1406296",
        ),
        (
            "webhooks: [{name: dev}]",
            TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA_CLIENT_MESSAGE_MAX_BYTES": "5000000"},
            "IDAAS_BRIDGE_KAFKA_CLIENT_MESSAGE_MAX_BYTES (kafka.client_properties.message.max.bytes): set "
            "kafka.max_record_bytes instead",
        ),
        (
            "webhooks: [{name: dev}]\nkafka: {client_properties: {bootstrap.servers: 'evil:9092'}}",
            TOKEN_ENV,
            "kafka.client_properties.bootstrap.servers in FILE: set kafka.bootstrap_servers instead (the "
            "bridge sets bootstrap.servers itself; remove it)",
        ),
        (
            "webhooks: [{name: dev}]",
            TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA_CLIENT_METADATA_BROKER_LIST": "evil:9092"},
            "IDAAS_BRIDGE_KAFKA_CLIENT_METADATA_BROKER_LIST (kafka.client_properties.metadata.broker.list): "
            "set kafka.bootstrap_servers instead (the bridge sets metadata.broker.list itself; remove it)",
        ),
        (
            "webhooks: [{name: dev}]\nkafka: {client_properties: {acks: '1'}}",
            TOKEN_ENV,
            "kafka.client_properties.acks in FILE: the bridge always produces with acks=all",
        ),
        (
            "webhooks: [{name: eu-prod}, {name: eu.prod}]",
            {"IDAAS_BRIDGE_WEBHOOK_EU_PROD_TOKENS": TOKEN},
            "webhooks[1].name = 'eu.prod' and webhooks[0].name = 'eu-prod' would share the token variable "
            "IDAAS_BRIDGE_WEBHOOK_EU_PROD_TOKENS",
        ),
        (
            "webhooks: [{name: Prod}, {name: prod}]",
            {"IDAAS_BRIDGE_WEBHOOK_PROD_TOKENS": TOKEN},
            "would share the token variable IDAAS_BRIDGE_WEBHOOK_PROD_TOKENS",
        ),
        (
            "webhooks: [{name: eu--prod}]",
            {},
            "webhook 'eu--prod' has no token: set IDAAS_BRIDGE_WEBHOOK_EU__PROD_TOKENS",
        ),
        # Named by where the value came from: the variable that set it, else the file's key (FILE: its path).
        (  # the case an operator met: the chart's env set it, and the file has no `port: abc`
            "webhooks: [{name: dev}]",
            TOKEN_ENV | {"IDAAS_BRIDGE_SERVER__PORT": "abc"},
            "IDAAS_BRIDGE_SERVER__PORT = 'abc' (server.port): expected a whole number",
        ),
        (  # the variable wins over the file, and is what the message names
            "webhooks: [{name: dev}]\nserver: {port: 8443}",
            TOKEN_ENV | {"IDAAS_BRIDGE_SERVER__PORT": "70000"},
            "IDAAS_BRIDGE_SERVER__PORT = 70000 (server.port): must be at least 1 and at most 65535",
        ),
        (
            "webhooks: [{name: dev}]\nserver: {port: abc}",
            TOKEN_ENV,
            "server.port = 'abc' in FILE: expected a whole number",
        ),
        (
            "webhooks: [{name: dev}]",
            TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA__TOPICS__USER__FORMAT": "cef"},
            "IDAAS_BRIDGE_KAFKA__TOPICS__USER__FORMAT = 'cef' (kafka.topics.user.format): choose one of",
        ),
        (
            "webhooks: [{name: dev}]",
            TOKEN_ENV | {"IDAAS_BRIDGE_LOGGING__LEVEL": "loud"},
            "IDAAS_BRIDGE_LOGGING__LEVEL = 'LOUD' (logging.level): choose DEBUG, INFO, WARNING or ERROR",
        ),
        (  # each side of a check across settings is named by where it came from
            "webhooks: [{name: dev}]\nserver: {port: 9000}",
            TOKEN_ENV | {"IDAAS_BRIDGE_SERVER__OPS_PORT": "9000"},
            "IDAAS_BRIDGE_SERVER__OPS_PORT = 9000 (server.ops_port): must differ from server.port in FILE",
        ),
        (
            "webhooks: [{name: dev}]",
            TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA__MAX_RECORD_BYTES": "1000000"},
            "server.max_body_bytes = 1048576 (the default): the dead-letter record of a body that large "
            "can reach 1406296 bytes, above IDAAS_BRIDGE_KAFKA__MAX_RECORD_BYTES = 1000000 "
            "(kafka.max_record_bytes);",
        ),
        (
            "webhooks: [{name: dev}]",
            TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA__TOPICS__USER": "idaas.user"},
            "IDAAS_BRIDGE_KAFKA__TOPICS__USER = 'idaas.user' (kafka.topics.user): expected a mapping",
        ),
        (
            "webhooks: [{name: dev}]",
            {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": "a-token-0123456789,b-token-0123456789,c-token-0123456789"},
            "webhook 'dev': 3 tokens given in IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS (webhooks[0].tokens); at "
            "most 2",
        ),
        (
            "webhooks: [{name: dev, tokens: [short-token-15c]}]",
            {},
            "webhook 'dev': token 1 of 1 in webhooks[0].tokens in FILE has 15 characters",
        ),
    ],
)
def test_invalid_settings_fail_at_start_up_naming_the_setting_and_where_its_value_came_from(
    tmp_path: Path, yaml_text: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path, env)
    assert message.replace("FILE", str(path)) in str(raised.value)


def test_the_body_limit_the_error_suggests_is_exactly_the_largest_that_fits(tmp_path: Path) -> None:
    def load(max_body: int) -> None:
        text = f"webhooks: [{{name: dev}}]\nserver: {{max_body_bytes: {max_body}}}\n"
        load_settings(write(tmp_path, text + "kafka: {max_record_bytes: 1000000}"), TOKEN_ENV)

    load(743856)
    with pytest.raises(ConfigError, match="at most 743856"):
        load(743857)


def test_more_than_twenty_webhooks_is_refused(tmp_path: Path) -> None:
    hooks = ", ".join(f"{{name: w{i}}}" for i in range(21))
    env = {env_name(f"w{i}"): TOKEN for i in range(21)}
    with pytest.raises(ConfigError, match="at most 20"):
        load_settings(write(tmp_path, f"webhooks: [{hooks}]"), env)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", TOKEN_ENV)


def test_check_config_prints_no_secret_and_a_short_token_fails_without_echo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bridge.cli import EXIT_CONFIG, main

    path = write(tmp_path, "webhooks: [{name: dev}]\nkafka: {client_properties: {sasl.username: bridge}}\n")
    monkeypatch.setenv("IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS", TOKEN)
    monkeypatch.setenv("IDAAS_BRIDGE_KAFKA_CLIENT_SASL_OAUTHBEARER_CONFIG", "clientSecret=oauth-secret-value")
    assert main(["check-config", "--config", str(path)]) == 0
    shown = capsys.readouterr().out
    assert TOKEN not in shown and "oauth-secret-value" not in shown
    assert '"sasl.oauthbearer.config": "***"' in shown and '"sasl.username": "bridge"' in shown
    monkeypatch.setenv("IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS", "short-secret")
    assert main(["check-config", "--config", str(path)]) == EXIT_CONFIG
    error = capsys.readouterr().err
    assert "IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS" in error and "short-secret" not in error


# --- where a value came from --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (  # a key no section has: refused, as in the file, under the variable's name
            {"IDAAS_BRIDGE_SERVER__PORTT": "9000"},
            "unknown setting(s) IDAAS_BRIDGE_SERVER__PORTT (server.portt): check the spelling",
        ),
        (
            {"IDAAS_BRIDGE_SERVERS__PORT": "9000"},
            "unknown setting(s) IDAAS_BRIDGE_SERVERS__PORT (servers): check the spelling",
        ),
        (  # one underscore too few: it was ignored, and the setting kept its value from the file
            {"IDAAS_BRIDGE_SERVER_PORT": "9000"},
            "IDAAS_BRIDGE_SERVER_PORT is not a variable the bridge reads (did you mean "
            "IDAAS_BRIDGE_SERVER__PORT?): a setting is overridden by IDAAS_BRIDGE_<SECTION>__<KEY>",
        ),
        (
            {"IDAAS_BRIDGE_ADMIN_API_HOSTNAME": "acme.us.trustedauth.com"},
            "IDAAS_BRIDGE_ADMIN_API_HOSTNAME is not a variable the bridge reads (did you mean "
            "IDAAS_BRIDGE_ADMIN_API__HOSTNAME?)",
        ),
        (
            {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKEN": TOKEN},
            "IDAAS_BRIDGE_WEBHOOK_DEV_TOKEN is not a variable the bridge reads: a setting is overridden",
        ),
    ],
)
def test_a_misspelt_variable_is_refused_by_its_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(ROOT / "config/bridge.yaml", TOKEN_ENV | env)
    assert message in str(raised.value)


def test_the_variables_the_bridge_reads_as_a_whole_are_not_taken_for_misspelt_overrides() -> None:
    env = TOKEN_ENV | {
        "IDAAS_BRIDGE_CONFIG": str(ROOT / "config/bridge.yaml"),
        "IDAAS_BRIDGE_KAFKA_CLIENT_SASL_USERNAME": "bridge",
        "IDAAS_BRIDGE_ADMIN_API_SHARED_SECRET": "admin-api-secret-0123456789",
        # A webhook the file does not configure: one Secret may hold the tokens of several bridges.
        "IDAAS_BRIDGE_WEBHOOK_OTHER_TOKENS": TOKEN,
        "OTHER_PROGRAM_SETTING": "1",
    }
    assert load_settings(None, env).kafka.client_properties["sasl.username"] == "bridge"


def test_the_variables_kubernetes_sets_for_a_service_named_idaas_bridge_are_not_taken_for_typos() -> None:
    # What a pod gets (enableServiceLinks defaults to true) from Services `idaas-bridge`, `idaas-bridge-ops`
    # in its namespace: refusing them would crash-loop the bridge wherever it runs without the chart.
    env = TOKEN_ENV | {
        "IDAAS_BRIDGE_SERVICE_HOST": "10.96.0.12",
        "IDAAS_BRIDGE_SERVICE_PORT": "8443",
        "IDAAS_BRIDGE_SERVICE_PORT_HTTPS": "8443",
        "IDAAS_BRIDGE_PORT": "tcp://10.96.0.12:8443",
        "IDAAS_BRIDGE_PORT_8443_TCP": "tcp://10.96.0.12:8443",
        "IDAAS_BRIDGE_PORT_8443_TCP_PROTO": "tcp",
        "IDAAS_BRIDGE_PORT_8443_TCP_PORT": "8443",
        "IDAAS_BRIDGE_PORT_8443_TCP_ADDR": "10.96.0.12",
        "IDAAS_BRIDGE_OPS_SERVICE_HOST": "10.96.0.13",
        "IDAAS_BRIDGE_OPS_PORT": "tcp://10.96.0.13:9464",
        "IDAAS_BRIDGE_OPS_PORT_9464_TCP_ADDR": "10.96.0.13",
    }
    assert load_settings(ROOT / "config/bridge.yaml", env).server.port == 8443
    # Only the URL makes `…_PORT` one of them: with a number it is the typo of an override.
    with pytest.raises(ConfigError, match="IDAAS_BRIDGE_SERVER_PORT is not a variable the bridge reads"):
        load_settings(ROOT / "config/bridge.yaml", env | {"IDAAS_BRIDGE_SERVER_PORT": "9000"})


def test_a_nested_client_property_is_refused_and_every_property_an_override_sets_is_masked() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(
            ROOT / "config/bridge.yaml",
            TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA__CLIENT_PROPERTIES__SASL__PASSWORD": "pw-0123456789"},
        )
    assert str(raised.value) == (
        "IDAAS_BRIDGE_KAFKA__CLIENT_PROPERTIES__SASL__PASSWORD = (a dict, value not shown) "
        "(kafka.client_properties.sasl): expected a string (a librdkafka property's value)"
    )
    env = TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA__CLIENT_PROPERTIES__CLIENT.ID": "set-by-an-override"}
    shown = describe(load_settings(ROOT / "config/bridge.yaml", env))["kafka"]["client_properties"]
    assert shown == {"client.id": "***"}


SECRET = "kafka-secret-0123"


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("security.protocol", SECRET, True),  # librdkafka: Invalid value "<value>" for ...
        ("compression.type", f'{SECRET}" for "x', False),  # a quote in the value; librdkafka names an alias
        ("enable.ssl.certificate.verification", SECRET, True),
        ("batch.size", "-5", True),  # ... value -5 is outside allowed range
        ("sasl.passwrd", SECRET, True),  # No such configuration property
        ("linger.ms", SECRET, False),  # librdkafka names it by its alias, queue.buffering.max.ms
    ],
)
@pytest.mark.parametrize("from_environment", [True, False])
def test_a_client_property_librdkafka_refuses_is_named_by_where_it_was_set_never_with_its_value(
    tmp_path: Path, key: str, value: str, named: bool, from_environment: bool
) -> None:
    from confluent_kafka import Producer

    from bridge.publish.kafka import new_client

    variable = "IDAAS_BRIDGE_KAFKA_CLIENT_" + key.upper().replace(".", "_")
    if from_environment:
        path, env = write(tmp_path, "webhooks: [{name: dev}]"), TOKEN_ENV | {variable: value}
    else:
        properties = f"kafka: {{client_properties: {{{key}: {value!r}}}}}"
        path, env = write(tmp_path, f"webhooks: [{{name: dev}}]\n{properties}"), TOKEN_ENV
    settings = load_settings(path, env).kafka
    with pytest.raises(ConfigError) as raised:
        new_client(Producer, client_config(settings), settings)
    message = str(raised.value)
    assert SECRET not in message and "-5" not in message, message
    if not named:
        assert message.startswith("kafka.client_properties (or IDAAS_BRIDGE_KAFKA_CLIENT_*): "), message
    elif from_environment:
        assert message.startswith(f"{variable} (kafka.client_properties.{key}): "), message
    else:
        assert message.startswith(f"kafka.client_properties.{key} in {path}: "), message


def test_a_refusal_worded_otherwise_that_holds_a_secret_is_not_shown() -> None:
    from bridge.publish.kafka import refused_property

    settings = load_settings(
        ROOT / "config/bridge.yaml", TOKEN_ENV | {"IDAAS_BRIDGE_KAFKA_CLIENT_SASL_PASSWORD": SECRET}
    )
    message = str(refused_property(settings.kafka, f'Property "sasl.password" cannot be {SECRET} here'))
    assert SECRET not in message
    assert message.startswith(
        "IDAAS_BRIDGE_KAFKA_CLIENT_SASL_PASSWORD (kafka.client_properties.sasl.password): librdkafka refused"
    )
