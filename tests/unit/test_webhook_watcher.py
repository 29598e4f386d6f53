"""The webhook watcher and `idaas-bridge webhooks`, against the fake Admin API on loopback."""

from __future__ import annotations

import asyncio
import calendar
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from bridge.adminapi.client import AdminApiClient
from bridge.adminapi.watcher import WebhookWatcher, same_url
from bridge.cli.exits import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_RUNTIME
from bridge.cli.main import main
from bridge.config import ADMIN_API_SECRET_ENV, ConfigError, Settings, env_name, load_settings
from bridge.guard import STREAK_WARNING, AutoDisableGuard
from tests.fake_admin_api import ServedFake

PUBLIC = "https://bridge.example.com"
TOKEN = "prod-token-0123456789"


def write_config(tmp_path: Path, fake: ServedFake | None, **admin: object) -> Path:
    document: dict[str, object] = {
        "server": {"public_base_url": PUBLIC},
        "webhooks": [{"name": "prod"}, {"name": "eu", "public_url": "https://eu.example.com/idaas"}],
    }
    if fake is not None:
        settings = fake.settings()
        document["admin_api"] = {
            "hostname": settings.hostname,
            "application_id": settings.application_id,
            "ca_file": settings.ca_file,
            "request_timeout_seconds": 2,
            **admin,
        }
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def environment(fake: ServedFake) -> dict[str, str]:
    return {
        env_name("prod"): TOKEN,
        env_name("eu"): TOKEN,
        ADMIN_API_SECRET_ENV: fake.api.shared_secret,
    }


def load(tmp_path: Path, fake: ServedFake, **admin: object) -> Settings:
    return load_settings(write_config(tmp_path, fake, **admin), environment(fake))


def gauge(name: str, webhook: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"webhook": webhook})


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ("https://Bridge.Example.com/webhooks/prod", "https://bridge.example.com:443/webhooks/prod/", True),
        ("https://bridge.example.com/webhooks/prod", "https://bridge.example.com/webhooks/Prod", False),
        ("https://bridge.example.com/webhooks/prod", "http://bridge.example.com/webhooks/prod", False),
        ("https://bridge.example.com:8443/webhooks/prod", "https://bridge.example.com/webhooks/prod", False),
    ],
)
def test_callback_urls_match_without_case_in_the_host_default_port_or_trailing_slash(
    left: str, right: str, same: bool
) -> None:
    assert same_url(left, right) is same


def test_the_state_of_each_configured_webhook_is_exported(tmp_path: Path, fake_admin_api: ServedFake) -> None:
    api = fake_admin_api.api
    expiry = time.gmtime(time.time() + 10 * 86400)
    api.add_webhook(
        f"{PUBLIC.upper()}/webhooks/prod",
        enabled=False,
        expiry_date=time.strftime("%Y-%m-%dT%H:%M:%S", expiry),
    )
    api.add_webhook(
        "https://eu.example.com/idaas", events=("user.created", "token.created", "credential.print")
    )
    api.add_webhook("https://someone-else.example.com/hook")
    settings = load(tmp_path, fake_admin_api)
    watcher = WebhookWatcher(settings, AdminApiClient(settings.admin_api), AutoDisableGuard(["prod", "eu"]))
    states = asyncio.run(watcher.check())
    assert states is not None
    assert [(state.name, state.status) for state in states] == [("prod", "disabled"), ("eu", "enabled")]
    assert gauge("idaas_bridge_webhook_enabled", "prod") == 0
    assert gauge("idaas_bridge_webhook_registered", "prod") == 1
    assert gauge("idaas_bridge_webhook_enabled", "eu") == 1
    assert gauge("idaas_bridge_webhook_expiry_timestamp_seconds", "prod") == pytest.approx(
        calendar.timegm(expiry), abs=1
    )
    assert gauge("idaas_bridge_webhook_expiry_timestamp_seconds", "eu") == 0
    assert gauge("idaas_bridge_webhook_unknown_event_types", "eu") == 2
    assert states[1].unknown_types == ("credential.print", "token.created")


def test_a_webhook_missing_in_idaas_counts_as_not_enabled(tmp_path: Path, fake_admin_api: ServedFake) -> None:
    fake_admin_api.api.add_webhook("https://eu.example.com/idaas")
    settings = load(tmp_path, fake_admin_api)
    watcher = WebhookWatcher(settings, AdminApiClient(settings.admin_api), AutoDisableGuard(["prod", "eu"]))
    states = asyncio.run(watcher.check())
    assert states is not None and states[0].status == "not registered"
    assert gauge("idaas_bridge_webhook_registered", "prod") == 0
    assert gauge("idaas_bridge_webhook_enabled", "prod") == 0


def test_a_failed_read_is_counted_and_keeps_the_last_state(
    tmp_path: Path, fake_admin_api: ServedFake
) -> None:
    fake_admin_api.api.inject("list_webhooks", 403)
    settings = load(tmp_path, fake_admin_api)
    watcher = WebhookWatcher(settings, AdminApiClient(settings.admin_api), AutoDisableGuard(["prod", "eu"]))
    before = REGISTRY.get_sample_value("idaas_bridge_webhook_checks_total", {"result": "forbidden"}) or 0
    assert asyncio.run(watcher.check()) is None
    assert (
        REGISTRY.get_sample_value("idaas_bridge_webhook_checks_total", {"result": "forbidden"}) == before + 1
    )


def test_the_streak_warning_makes_the_watcher_read_at_once(
    tmp_path: Path, fake_admin_api: ServedFake
) -> None:
    api = fake_admin_api.api
    settings = load(tmp_path, fake_admin_api, webhook_poll_seconds=3600)
    guard = AutoDisableGuard(["prod", "eu"])
    watcher = WebhookWatcher(settings, AdminApiClient(settings.admin_api), guard)

    async def until(condition: object, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, "the watcher did not read the state"
            await asyncio.sleep(0.05)

    async def run() -> None:
        task = asyncio.create_task(watcher.run())
        await until(lambda: api.count("list_webhooks") == 1)
        for _ in range(STREAK_WARNING - 1):
            guard.record("prod", 503, 0.01, well_formed=True)
        await asyncio.sleep(0.5)
        assert api.count("list_webhooks") == 1
        guard.record("prod", 503, 0.01, well_formed=True)
        await until(lambda: api.count("list_webhooks") == 2)
        task.cancel()

    asyncio.run(run())


def test_a_webhook_quiet_for_the_threshold_is_read_once_then_on_the_regular_interval(
    tmp_path: Path, fake_admin_api: ServedFake
) -> None:
    now = [1_000_000.0]
    settings = load(tmp_path, fake_admin_api, webhook_poll_seconds=7200, quiet_poll_seconds=600)
    guard = AutoDisableGuard(["prod", "eu"], clock=lambda: now[0])
    watcher = WebhookWatcher(settings, AdminApiClient(settings.admin_api), guard, clock=lambda: now[0])
    asyncio.run(watcher.check())
    assert watcher.seconds_until_due() == 600  # quiet since start: read when the threshold is crossed
    now[0] += 600
    asyncio.run(watcher.check())
    assert watcher.seconds_until_due() == 7200  # already read since it went quiet
    guard.record("prod", 200, 0.01, well_formed=True)
    now[0] += 100
    assert watcher.seconds_until_due() == 500


def test_the_webhooks_command_lists_state_and_expiry_and_fails_when_one_is_disabled(
    tmp_path: Path,
    fake_admin_api: ServedFake,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = fake_admin_api.api
    disabled = api.add_webhook(f"{PUBLIC}/webhooks/prod", enabled=False)
    api.add_webhook("https://eu.example.com/idaas", expiry_date="2999-01-01T00:00:00")
    for name, value in environment(fake_admin_api).items():
        monkeypatch.setenv(name, value)
    config = str(write_config(tmp_path, fake_admin_api))
    assert main(["webhooks", "--config", config]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "prod" in out and "disabled" in out and disabled["id"] in out
    assert "2999-01-01 00:00 UTC" in out
    disabled["enabled"] = True
    assert main(["webhooks", "--config", config]) == EXIT_OK
    api.shared_secret = "rotated-secret-abcdefghijklmnop"
    assert main(["webhooks", "--config", config]) == EXIT_RUNTIME
    assert "IDAAS_BRIDGE_ADMIN_API_SHARED_SECRET" in capsys.readouterr().err


def test_the_webhooks_command_needs_the_admin_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(env_name("prod"), TOKEN)
    monkeypatch.setenv(env_name("eu"), TOKEN)
    assert main(["webhooks", "--config", str(write_config(tmp_path, None))]) == EXIT_CONFIG
    assert "admin_api.hostname is empty" in capsys.readouterr().err


def test_admin_api_needs_every_webhooks_public_url(tmp_path: Path, fake_admin_api: ServedFake) -> None:
    path = write_config(tmp_path, fake_admin_api)
    document = yaml.safe_load(path.read_text())
    del document["server"]
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"webhooks\[0\] \('prod'\) has no public URL"):
        load_settings(path, environment(fake_admin_api))
