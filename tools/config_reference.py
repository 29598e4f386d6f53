"""docs/configuration.md: the reference of every setting, from the settings model in bridge/config.py.

    make config-reference      (python -m tools.config_reference)

The settings, their types and defaults come from the model's dataclasses; the environment variable that
overrides each from the loader's rules (bridge/config.py's module docstring); the description from the
comment above the setting in config/bridge.yaml, the commented example every user starts from (a setting
without one there fails the generator). tests/unit/test_config_reference.py fails while the committed file
differs from this output.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import tools
from bridge import config as model
from tools.values_schema import DERIVED

ROOT: Final = tools.ROOT
DOC: Final = Path("docs/configuration.md")
EXAMPLE: Final = Path("config/bridge.yaml")
KEY: Final = re.compile(r"^(?P<indent>\s*)(?P<item>- )?(?P<key>[a-z][a-z0-9_]*):")
#: Settings read only from the environment (secrets), with the variable that holds them.
SECRETS: Final = {
    "webhooks[].tokens": (
        f"`{model.ENV_PREFIX}WEBHOOK_<NAME>_TOKENS` only: the webhook's token, or `old,new` during rotation "
        f"(at least {model.MIN_TOKEN_LENGTH} characters each; `<NAME>` as bridge/config.py's `env_name`)"
    ),
    "admin_api.shared_secret": f"`{model.ENV_PREFIX}ADMIN_API_SHARED_SECRET` only",
}


@dataclasses.dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str
    environment: str
    description: str


def _joined(names: list[str]) -> str:
    path = ""
    for name in names:
        path = path + name if name == "[]" or not path else f"{path}.{name}"
    return path


def example_comments(text: str) -> dict[str, str]:
    """Setting path -> the comment lines right above it in the example file. A key with none takes the
    comment of the sibling just above it with no blank line between (one comment often covers a pair, e.g.
    host and port), and the first key of a list item the list's own."""
    found: dict[str, str] = {}
    #: (indent, name) of the keys enclosing the current line; "[]" marks a list item.
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    last_of: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        match = KEY.match(line)
        if match is None:
            if not stripped:  # a blank line ends what a comment covers
                comment = []
                last_of.clear()
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if match["item"]:
            stack.append((indent, "[]"))
            indent += 2
        parent = _joined([name for _, name in stack])
        path = _joined([*(name for _, name in stack), match["key"]])
        inherited = last_of.get(parent) or (found.get(parent.removesuffix("[]"), "") if match["item"] else "")
        found[path] = " ".join(comment) or inherited
        last_of[parent] = found[path]
        stack.append((indent, match["key"]))
        comment = []
    return found


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin in (tuple, list, frozenset):
        return "list of strings"
    if origin is dict:
        return "mapping"
    if origin in (types.UnionType, typing.Union):
        return " or ".join(type_name(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(annotation, str(annotation))


def default_text(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value in ("", (), {}):
        return "empty"
    return f"`{value}`"


def environment(path: str) -> str:
    if path in SECRETS:
        return SECRETS[path]
    if path.startswith("webhooks[]."):  # a list: no variable names an entry
        return "-"
    if path == "kafka.client_properties":
        return f"`{model.ENV_PREFIX}KAFKA_CLIENT_<PROPERTY>` per property (`.` as `_`)"
    return f"`{model.ENV_PREFIX}{'__'.join(part.upper() for part in path.split('.'))}`"


def settings_fields() -> Iterator[tuple[str, Any, dataclasses.Field[Any] | None]]:
    """(path, annotation, field) of every setting, in the model's order; a topic's fields per topic key."""
    hints = typing.get_type_hints(model.Settings)
    for section in dataclasses.fields(model.Settings):
        if section.name in DERIVED:
            continue
        annotation = hints[section.name]
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None) and arg is not Ellipsis]
        cls = args[0] if args else annotation
        prefix = f"{section.name}[]" if typing.get_origin(annotation) is tuple else section.name
        cls_hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            path = f"{prefix}.{field.name}"
            if path in DERIVED:
                continue
            if path == "kafka.topics":
                topic_hints = typing.get_type_hints(model.TopicSettings)
                for key in model.TOPIC_KEYS:
                    for topic_field in dataclasses.fields(model.TopicSettings):
                        yield f"kafka.topics.{key}.{topic_field.name}", topic_hints[topic_field.name], None
                continue
            yield path, cls_hints[field.name], field


def rows() -> list[Row]:
    comments = example_comments((ROOT / EXAMPLE).read_text(encoding="utf-8"))
    defaults = model.KafkaSettings().topics
    found = []
    for path, annotation, field in settings_fields():
        if field is None:  # a topic's name or format
            _, _, key, name = path.split(".")
            default = f"`{getattr(defaults[key], name)}`"
            description = comments.get(f"kafka.topics.{key}") or comments.get("kafka.topics", "")
        else:
            default = default_text(field)
            if default == "required" and path.startswith("admin_api."):
                default = "required when the section is set"
            description = comments.get(path, "")
        if path in SECRETS:
            description = description or "a secret: never in the file"
        if not description:
            raise SystemExit(f"{path}: no comment above it in {EXAMPLE}; document it there")
        found.append(Row(path, type_name(annotation), default, environment(path), description))
    return found


def configuration_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated by tools/config_reference.py from bridge/config.py and {EXAMPLE}; edit those,",
        "     then run `make config-reference`. -->",
        "",
        f"Every setting of the bridge, from its settings model. Start from [{EXAMPLE}](../{EXAMPLE}), whose",
        "comments these descriptions are. A setting can also be set by the environment variable beside it;",
        "values are read as YAML scalars (`1.5`, `true`, `8443`). Secrets are read from the environment",
        "only. `idaas-bridge check-config` validates a configuration and prints it with secrets masked. An",
        "error about a value set by a variable names that variable; a variable with the `IDAAS_BRIDGE_`",
        "prefix that is none of these (a typo) is refused.",
        "",
    ]
    section = None
    previous = ""
    for row in rows():
        current = row.path.split(".")[0].removesuffix("[]")
        if current != section:
            section = current
            lines += ["", f"## {section}", "", "| setting | type | default | environment | description |"]
            lines.append("|---|---|---|---|---|")
        description = row.description.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
        shown, previous = ("as above" if description == previous else description), description
        lines.append(f"| `{row.path}` | {row.type} | {row.default} | {row.environment} | {shown} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    tools.run(__doc__, {DOC: configuration_markdown()}, argv)


if __name__ == "__main__":
    main()
