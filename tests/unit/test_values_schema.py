"""helm/idaas-siem-bridge/values.schema.json: generated (tools/values_schema.py), and its `config` part agrees
with the bridge's own configuration loader."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bridge.config import MIN_TOKEN_LENGTH, ConfigError, env_name, load_settings
from tools import values_schema

ROOT = values_schema.ROOT
VALUES = yaml.safe_load((ROOT / values_schema.CHART / "values.yaml").read_text())


def test_committed_schema_equals_the_generator_output() -> None:
    committed = (ROOT / values_schema.SCHEMA).read_text(encoding="utf-8")
    assert committed == values_schema.schema_json(), "run `make chart-schema`"


def test_the_chart_defaults_and_the_all_on_values_are_valid() -> None:
    schema = values_schema.values_schema(VALUES)
    jsonschema.validate(VALUES, schema)
    all_on = yaml.safe_load((ROOT / "tests/helm/values-all-on.yaml").read_text())
    jsonschema.validate(_merged(VALUES, all_on), schema)


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _without_fixed(document: dict[str, Any]) -> dict[str, Any]:
    trimmed = copy.deepcopy(document)
    for path in values_schema.FIXED_BY_CHART:
        section, key = path.split(".")
        entries = trimmed[section] if isinstance(trimmed[section], list) else [trimmed[section]]
        for entry in entries:
            entry.pop(key, None)
    return trimmed


def test_every_setting_of_the_bridge_config_file_is_in_the_config_schema() -> None:
    """config/bridge.yaml names every setting; less the ones the chart fixes, the schema accepts it all."""
    document = yaml.safe_load((ROOT / "config/bridge.yaml").read_text())
    jsonschema.validate(_without_fixed(document), values_schema.config_schema())


def _setting_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the settings a schema names (through arrays of objects too)."""
    schema = schema.get("items", schema)
    paths = set()
    for key, child in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.add(path)
        if prefix.count(".") < 1:  # sections and their keys; topic entries are checked as a whole
            paths |= _setting_paths(child, f"{path}.")
    return paths


def test_every_setting_of_the_config_schema_is_in_the_bridge_config_file() -> None:
    """The other way round: nothing the loader derives or does not read slips into the schema."""
    document = yaml.safe_load((ROOT / "config/bridge.yaml").read_text())
    documented = _setting_paths(
        {"properties": {key: {"properties": dict.fromkeys(value[0] if isinstance(value, list) else value)}
                        for key, value in document.items()}}
    )  # fmt: skip
    assert _setting_paths(values_schema.config_schema()) <= documented


@pytest.mark.parametrize("path", sorted(values_schema.FIXED_BY_CHART - {"webhooks.tokens"}))
def test_settings_the_chart_fixes_are_refused(path: str) -> None:
    section, key = path.split(".")
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.validate({section: {key: "x"}}, values_schema.config_schema())


def _accepts(path: str, value: float, tmp_path: Path) -> bool:
    """Whether bridge.config.load_settings takes `value` for `path` (in an otherwise small valid config)."""
    document: dict[str, Any] = {
        "webhooks": [{"name": "w"}],
        "server": {"max_body_bytes": 1024},
        "spool": {"segment_bytes": 64 * 1024},
    }
    section, key = path.split(".")
    document.setdefault(section, {})[key] = value
    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump(document))
    try:
        load_settings(config, environ={env_name("w"): "t" * MIN_TOKEN_LENGTH})
    except ConfigError as error:
        assert path in str(error)
        return False
    return True


@pytest.mark.parametrize(("path", "bounds"), sorted(values_schema.BOUNDS.items()))
def test_schema_bounds_are_the_loaders(path: str, bounds: dict[str, float], tmp_path: Path) -> None:
    """Each bound of the schema sits exactly where bridge.config draws the line."""
    step = 1 if "minimum" in bounds or "maximum" in bounds else 0.001
    for kind, bound in bounds.items():
        inside = {
            "minimum": bound,
            "maximum": bound,
            "exclusiveMinimum": bound + step,
            "exclusiveMaximum": bound - step,
        }[kind]
        outside = {
            "minimum": bound - step,
            "maximum": bound + step,
            "exclusiveMinimum": bound,
            "exclusiveMaximum": bound,
        }[kind]
        assert _accepts(path, inside, tmp_path), f"{path} = {inside} is refused by the bridge"
        assert not _accepts(path, outside, tmp_path), f"{path} = {outside} is accepted by the bridge"
