"""The request path's modules run compiled (pyproject.toml [tool.idaas-bridge], setup.py): the whole suite
and the figures in docs/benchmarks.md are the compiled code's, and a session never runs a stale build."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import os
import shutil
import subprocess
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from bridge import auth
from bridge.dedup import Claim
from bridge.events.envelope import parse_envelope
from bridge.events.normalize import normalize
from bridge.events.samples import sample_deliveries
from bridge.http_message import json_answer
from bridge.publish import kafka
from bridge.routing import OutboundRecord
from tests import compiled_build
from tests.compiled_build import EXTENSION_SUFFIX


def test_every_listed_module_is_imported_from_its_c_extension() -> None:
    sources = compiled_build.compiled_sources()
    assert len(sources) >= 10
    for source in sources:
        module = importlib.import_module(compiled_build.module_name(source))
        assert module.__file__ == str(compiled_build.extension_of(source)), module.__file__


def test_the_build_in_the_tree_is_current() -> None:
    assert compiled_build.out_of_date() == []


def test_a_stale_missing_or_stray_extension_is_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.idaas-bridge]\ncompiled-modules = ["bridge/fresh.py", "bridge/edited.py", "bridge/new.py"]\n'
    )
    package = tmp_path / "bridge"
    package.mkdir()
    for name in ("fresh", "edited", "new"):
        (package / f"{name}.py").write_text("")
    for name in ("fresh", "edited", "dropped"):
        (package / f"{name}{EXTENSION_SUFFIX}").write_bytes(b"")
    os.utime(package / "fresh.py", (1_000, 1_000))
    os.utime(package / f"edited{EXTENSION_SUFFIX}", (1_000, 1_000))
    assert compiled_build.out_of_date(tmp_path) == [
        "bridge/edited.py changed after it was compiled",
        "bridge/new.py is not compiled",
        f"bridge/dropped{EXTENSION_SUFFIX} is left from a module no longer compiled",
    ]
    (package / f"dropped{EXTENSION_SUFFIX}").unlink()
    (package / f"new{EXTENSION_SUFFIX}").write_bytes(b"")
    os.utime(package / "edited.py", (500, 500))
    assert compiled_build.out_of_date(tmp_path) == []


def test_the_build_compiles_with_the_mypy_that_type_checks() -> None:
    """[build-system] pins mypy (mypyc) for the build; constraints.txt pins it for `make typecheck`."""
    pyproject = tomllib.loads((compiled_build.ROOT / "pyproject.toml").read_text())
    build_pins = [pin for pin in pyproject["build-system"]["requires"] if pin.startswith("mypy==")]
    constraints = (compiled_build.ROOT / "constraints.txt").read_text().splitlines()
    assert build_pins and build_pins[0] in constraints, (build_pins, "constraints.txt")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_rebuilds_the_venv_when_any_compiled_source_changes() -> None:
    result = subprocess.run(
        ["make", "-p", "-n", "help"], cwd=compiled_build.ROOT, capture_output=True, text=True, check=True
    )
    rule = next(line for line in result.stdout.splitlines() if line.startswith(".venv/bin/idaas-bridge:"))
    sources = [str(source.relative_to(compiled_build.ROOT)) for source in compiled_build.compiled_sources()]
    assert set(sources) <= set(rule.split()[1:]), rule


def test_no_compiled_function_binds_one_exception_name_to_two_classes() -> None:
    """mypyc types an `except ... as name` variable once per function, from its first handler: a later
    handler of another class binding the same name raises TypeError when it catches (a full spool's
    `Unavailable` in `_make_durable` became a 500 that way, where the interpreter answered 503)."""
    reused = []
    for source in compiled_build.compiled_sources():
        for function in ast.walk(ast.parse(source.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            classes: dict[str, set[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.ExceptHandler) and node.name and node.type is not None:
                    classes.setdefault(node.name, set()).add(ast.unparse(node.type))
            reused += [(source.name, function.name, name) for name, kind in classes.items() if len(kind) > 1]
    assert reused == []


def _value_instances() -> list[object]:
    """One instance of each immutable value type the compiled modules define, built as the bridge builds
    them where that is short."""
    headers = auth.SignedHeaders("POST", "https://bridge.example/webhooks/prod", None, None, None)
    envelope = parse_envelope(orjson.dumps(sample_deliveries()[0]))
    event = normalize(envelope, "prod", datetime(2027, 1, 1, tzinfo=UTC))
    return [
        headers,
        auth.SignedRequest(headers, b"{}"),
        auth.AuthFailure("signature_mismatch", "the signature does not match"),
        auth.DigestCheck((("sha-256", b"\0" * 32),)),
        auth.LegacyCheck(b"0" * 64, ("token",)),
        auth._Signature((), (), {}, "", b""),
        envelope,
        event,
        event.subject,
        OutboundRecord("idaas.user", b"key", b"{}", [], 0),
        json_answer(200, {"status": "published"}),
        Claim(duplicate=True),
        kafka.Delivered("idaas.user", 0, 0),
        kafka._TopicMetrics.of("test.value-types"),
    ]


def _init_by_hand(kind: object) -> bool:
    """A dataclass whose __init__ is its own (`init=False`): how the compiled modules write a value type."""
    params = getattr(kind, "__dataclass_params__", None)
    return isinstance(kind, type) and params is not None and not params.init


def test_the_compiled_value_types_cannot_be_changed() -> None:
    """They replaced NamedTuples and frozen dataclasses, whose __new__ or __init__ runs as Python code even in
    a compiled module; their fields are Final, which the compiled class enforces at run time."""
    instances = _value_instances()
    covered = {type(instance) for instance in instances}
    value_types = {
        kind
        for source in compiled_build.compiled_sources()
        for kind in vars(importlib.import_module(compiled_build.module_name(source))).values()
        if _init_by_hand(kind)
    }
    assert value_types <= covered, sorted(kind.__qualname__ for kind in value_types - covered)
    for instance in instances:
        if isinstance(instance, Claim):
            names = ["duplicate", "pending"]
        else:
            assert dataclasses.is_dataclass(instance)
            names = [field.name for field in dataclasses.fields(instance)]
        assert names
        for name in names:
            with pytest.raises(AttributeError, match="not writable"):
                setattr(instance, name, getattr(instance, name))
