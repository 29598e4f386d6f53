"""The `admin_api` section: off when absent, the secret only from the environment, precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import ADMIN_API_SECRET_ENV, ConfigError, describe, load_settings

SECRET = "admin-api-secret-0123456789"
ENV = {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": "dev-token-0123456789", ADMIN_API_SECRET_ENV: SECRET}
BASE = "server:\n  public_base_url: https://bridge.example.com\nwebhooks:\n  - name: dev\n"
TENANT = "admin_api:\n  hostname: acme.us.trustedauth.com\n  application_id: a\n"


def load(tmp_path: Path, section: str, env: dict[str, str] = ENV):  # type: ignore[no-untyped-def]
    path = tmp_path / "bridge.yaml"
    path.write_text(BASE + section)
    return load_settings(path, env)


def test_the_feature_is_off_without_a_hostname_even_with_the_secret_set(tmp_path: Path) -> None:
    assert not load(tmp_path, "").admin_api.enabled
    assert describe(load(tmp_path, ""))["admin_api"]["hostname"] == ""
    off = load(tmp_path, 'admin_api:\n  hostname: ""\n  webhook_poll_seconds: 60\n').admin_api
    assert not off.enabled and off.webhook_poll_seconds == 60


def test_a_configured_section_reads_the_secret_from_the_environment_and_masks_it(tmp_path: Path) -> None:
    settings = load(tmp_path, TENANT + "  webhook_poll_seconds: 60\n")
    assert settings.admin_api.enabled
    assert settings.admin_api.shared_secret == SECRET
    assert settings.admin_api.hostname == "acme.us.trustedauth.com"
    assert settings.admin_api.webhook_poll_seconds == 60
    shown = describe(settings)["admin_api"]
    assert shown["shared_secret"] == "***" and SECRET not in repr(shown) and SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("section", "env", "expected"),
    [
        (
            "admin_api:\n  hostname: https://acme.us.trustedauth.com/\n  application_id: a\n",
            ENV,
            "admin_api.hostname = 'https://acme.us.trustedauth.com/' in FILE: give the tenant's hostname "
            "only",
        ),
        (
            "admin_api:\n  hostname: acme.us.trustedauth.com\n",
            ENV,
            "admin_api.application_id = '' (the default): give the applicationId",
        ),
        (
            "admin_api:\n  application_id: a\n",
            ENV,
            "admin_api.application_id in FILE is set but admin_api.hostname (the default) is empty",
        ),
        (
            TENANT,
            {"IDAAS_BRIDGE_WEBHOOK_DEV_TOKENS": "dev-token-0123456789"},
            f"{ADMIN_API_SECRET_ENV} is not",
        ),
        (
            TENANT + "  shared_secret: s3cr3t\n",
            ENV,
            f"admin_api.shared_secret in FILE: the shared secret never goes in the file (nor in an "
            f"IDAAS_BRIDGE_ADMIN_API__* override); set {ADMIN_API_SECRET_ENV} instead",
        ),
        (
            TENANT + "  webhook_poll_seconds: 5\n",
            ENV,
            "admin_api.webhook_poll_seconds = 5 in FILE: must be at least 30",
        ),
        (
            TENANT + "  ca_file: /nope.pem\n",
            ENV,
            "admin_api.ca_file = '/nope.pem' in FILE: no such file",
        ),
        (
            TENANT + "  poll: 5\n",
            ENV,
            "unknown setting(s) admin_api.poll in FILE: check the spelling",
        ),
        (
            TENANT + "  backfill_margin_seconds: -0.5\n",
            ENV,
            "admin_api.backfill_margin_seconds = -0.5 in FILE: must be 0 or more",
        ),
        (
            TENANT + "  backfill_max_gap_seconds: 0\n",
            ENV,
            "admin_api.backfill_max_gap_seconds = 0 in FILE: must be above 0",
        ),
        (
            TENANT + "  audit_topic: idaas.user\n",
            ENV,
            "admin_api.audit_topic = 'idaas.user' in FILE: the same topic as kafka.topics.user.name "
            "(the default)",
        ),
    ],
)
def test_wrong_settings_are_refused_at_start_up_with_what_to_do(
    tmp_path: Path, section: str, env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, section, env)
    assert expected.replace("FILE", str(tmp_path / "bridge.yaml")) in str(error.value)
    assert "s3cr3t" not in str(error.value)


def test_a_secret_put_in_a_section_override_is_refused_without_showing_it(tmp_path: Path) -> None:
    env = ENV | {"IDAAS_BRIDGE_ADMIN_API__SHARED_SECRET": "override-secret-value"}
    with pytest.raises(ConfigError) as error:
        load(tmp_path, TENANT, env)
    assert str(error.value).startswith("IDAAS_BRIDGE_ADMIN_API__SHARED_SECRET (admin_api.shared_secret): ")
    assert ADMIN_API_SECRET_ENV in str(error.value) and "override-secret-value" not in str(error.value)


def test_the_automatic_backfill_is_on_by_default_and_the_audit_topic_is_produced_to_only_when_set(
    tmp_path: Path,
) -> None:
    default = load(tmp_path, TENANT)
    assert default.admin_api.backfill_automatic and "idaas.audit" not in default.topic_names()
    configured = load(tmp_path, TENANT + "  backfill_automatic: false\n  audit_topic: idaas.audit\n")
    assert not configured.admin_api.backfill_automatic
    assert configured.topic_names()[-1] == "idaas.audit" and len(configured.topic_names()) == 6


def test_the_downtime_backfill_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    assert load(tmp_path, TENANT).admin_api.backfill_downtime
    assert not load(tmp_path, TENANT + "  backfill_downtime: false\n").admin_api.backfill_downtime
    with pytest.raises(ConfigError, match=r"admin_api\.backfill_downtime"):
        load(tmp_path, TENANT + "  backfill_downtime: sometimes\n")
