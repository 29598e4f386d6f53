"""A reader for the Logstash pipeline language, and just enough of Logstash to run deploy/elastic's filter.

The grammar is Logstash's own (sections of plugins; `if`/`else if`/`else` blocks; values that are strings,
numbers, barewords, arrays or hashes; `#` comments). The evaluator knows the plugins and conditions the
project's pipeline uses and fails loudly on anything else, so a test cannot pass by silently ignoring a
change. The fingerprint filter is computed as logstash-filter-fingerprint defines it: with
`concatenate_sources`, the sorted source names and their values as `|name|value`, a final `|`, then the
hex digest of `method` (or base64 with `base64encode`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

Value = Any
Event = dict[str, Any]

_TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<arrow>=>)
    |(?P<op>==|!=|=~|!~|<=|>=)
    |(?P<punct>[{}\[\],()<>!])
    |(?P<word>[^\s{}\[\],()"'\#=!<>]+)""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Plugin:
    name: str
    options: dict[str, Value]


@dataclass(frozen=True, slots=True)
class Conditional:
    """`if`/`else if`/`else`: (condition text, or None for `else`; the branch's body) in order."""

    branches: list[tuple[str | None, list[Plugin | Conditional]]]


Body = list[Plugin | Conditional]


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"cannot read the pipeline at {text[position : position + 30]!r}")
        position = match.end()
        if match.lastgroup is not None:
            tokens.append((match.lastgroup, match.group(match.lastgroup)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise ValueError(f"pipeline ends early (expected {expected!r})")
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, got {token[1]!r}")
        self.at += 1
        return token

    def sections(self) -> dict[str, Body]:
        sections: dict[str, Body] = {}
        while self.peek() is not None:
            _, name = self.take()
            self.take("{")
            sections.setdefault(name, []).extend(self.body())
        return sections

    def body(self) -> Body:
        items: Body = []
        while self.peek() != "}":
            if self.peek() == "if":
                items.append(self.conditional())
            else:
                _, name = self.take()
                self.take("{")
                items.append(Plugin(name, self.options()))
        self.take("}")
        return items

    def conditional(self) -> Conditional:
        self.take("if")
        branches = [(self.condition(), self.block())]
        while self.peek() == "else":
            self.take("else")
            if self.peek() == "if":
                self.take("if")
                branches.append((self.condition(), self.block()))
            else:
                branches.append((None, self.block()))
        return Conditional(branches)

    def condition(self) -> str:
        words = []
        while self.peek() != "{":
            words.append(self.take()[1])
        return " ".join(words).replace("[ ", "[").replace(" ]", "]").replace("] [", "][")

    def block(self) -> Body:
        self.take("{")
        return self.body()

    def options(self) -> dict[str, Value]:
        options: dict[str, Value] = {}
        while self.peek() != "}":
            key = self.value()
            self.take("=>")
            options[str(key)] = self.value()
        self.take("}")
        return options

    def value(self) -> Value:
        kind, token = self.take()
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", token[1:-1])
        if token == "[":
            items = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() == ",":
                    self.take(",")
            self.take("]")
            return items
        if token == "{":
            return self.options()
        if kind == "word":
            return int(token) if re.fullmatch(r"-?\d+", token) else token
        raise ValueError(f"unexpected {token!r} where a value belongs")


def parse(text: str) -> dict[str, Body]:
    """Section name (`input`, `filter`, `output`) → its plugins and conditionals, in order."""
    return _Parser(text).sections()


def plugins(body: Body, name: str) -> list[Plugin]:
    """Every plugin called `name` in `body`, inside conditionals too."""
    found = []
    for item in body:
        if isinstance(item, Plugin):
            found += [item] if item.name == name else []
        else:
            for _, branch in item.branches:
                found += plugins(branch, name)
    return found


# ------------------------------------------------------------------------------------------ evaluation

_REFERENCE = re.compile(r"\[([^\[\]]+)\]")


def field_path(reference: str) -> list[str]:
    """`[a][b]` → ["a", "b"]; a bare name is one top-level field."""
    steps = _REFERENCE.findall(reference)
    return steps if steps and "".join(f"[{s}]" for s in steps) == reference else [reference]


def get_field(event: Event, reference: str) -> Value:
    node: Any = event
    for step in field_path(reference):
        if not isinstance(node, dict) or step not in node:
            return None
        node = node[step]
    return node


def set_field(event: Event, reference: str, value: Value) -> None:
    *parents, last = field_path(reference)
    node = event
    for step in parents:
        node = node.setdefault(step, {})
    node[last] = value


def sprintf(template: str, event: Event) -> str:
    """Logstash's `%{[field]}`: the field's value, or the reference left as it is when the field is absent."""

    def substitute(match: re.Match[str]) -> str:
        value = get_field(event, match.group(1))
        return match.group(0) if value is None else str(value)

    return re.sub(r"%\{([^}]+)\}", substitute, template)


def _ruby_text(value: Value) -> str:
    """Ruby's `"#{value}"` for the JSON-like values a Logstash event holds (nil is empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fingerprint(options: dict[str, Value], event: Event) -> str:
    """logstash-filter-fingerprint's value for the concatenated sources (the only mode the pipeline uses)."""
    if options.get("concatenate_sources") not in ("true", True) or "key" in options:
        raise NotImplementedError(f"fingerprint options {options} are not the modelled ones")
    sources = options["source"] if isinstance(options["source"], list) else [options["source"]]
    text = "".join(f"|{name}|{_ruby_text(get_field(event, name))}" for name in sorted(sources)) + "|"
    digest = hashlib.new(str(options.get("method", "SHA1")).lower(), text.encode())
    if options.get("base64encode") in ("true", True):
        return base64.b64encode(digest.digest()).decode()
    return digest.hexdigest()


def _truthy(condition: str, event: Event) -> bool:
    if not re.fullmatch(r"(\[[^\[\]]+\])+", condition):
        raise NotImplementedError(f"condition {condition!r} is not a field reference")
    return get_field(event, condition) not in (None, False, "")


def run_filter(body: Body, event: Event) -> Event:
    """Apply the filter section to `event` (in place) and return it."""
    for item in body:
        if isinstance(item, Conditional):
            for condition, branch in item.branches:
                if condition is None or _truthy(condition, event):
                    run_filter(branch, event)
                    break
        elif item.name == "fingerprint":
            set_field(event, item.options["target"], fingerprint(item.options, event))
        elif item.name == "mutate":
            for option, pairs in item.options.items():
                if option not in ("copy", "add_field"):
                    raise NotImplementedError(f"mutate {option}")
                for source, target in pairs.items():
                    if option == "copy":
                        set_field(event, target, get_field(event, source))
                    else:
                        set_field(event, sprintf(source, event), sprintf(target, event))
        else:
            raise NotImplementedError(f"filter plugin {item.name}")
    return event
