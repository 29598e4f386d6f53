"""docs/configuration.md is what tools/config_reference.py writes from the settings model."""

from __future__ import annotations

import dataclasses

from bridge import config as model
from tools import config_reference


def test_committed_reference_matches_the_settings_model() -> None:
    committed = (config_reference.ROOT / config_reference.DOC).read_text(encoding="utf-8")
    assert committed == config_reference.configuration_markdown(), "run `make config-reference`"


def test_every_setting_of_the_model_is_in_the_reference_with_a_description() -> None:
    text = config_reference.configuration_markdown()
    rows = {row.path: row for row in config_reference.rows()}
    for field in dataclasses.fields(model.ServerSettings):
        assert f"| `server.{field.name}` |" in text
    assert "kafka.topics.deadletter.name" in rows
    assert "kafka.sources" not in rows and not [path for path in rows if path.startswith("sources.")]
    assert all(row.description for row in rows.values())
    assert rows["server.port"].environment == "`IDAAS_BRIDGE_SERVER__PORT`"
    assert rows["kafka.topics.user.format"].environment == "`IDAAS_BRIDGE_KAFKA__TOPICS__USER__FORMAT`"


def test_a_setting_without_a_comment_in_the_example_fails_the_generator() -> None:
    comments = config_reference.example_comments("server:\n  # Where it listens.\n  host: x\n\n  port: 1\n")
    assert comments["server.host"] == "Where it listens."
    assert comments["server.port"] == ""  # a blank line ends the comment's reach
    paired = config_reference.example_comments("server:\n  # Address and port.\n  host: x\n  port: 1\n")
    assert paired["server.port"] == "Address and port."
