"""The request path's modules run compiled (pyproject.toml [tool.idaas-bridge], setup.py): the whole suite
and the figures in docs/benchmarks.md are the compiled code's, and a session never runs a stale build."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

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
