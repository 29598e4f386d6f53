"""Which modules mypyc compiles (pyproject.toml [tool.idaas-bridge]) and whether the build in the tree is
current.

The editable install (`make venv`) builds each one's C extension beside its source, where the import system
takes it before the source: a source changed since would be tested as it was when compiled, and an extension
left from a module no longer compiled would stand in for its source. tests/conftest.py stops a session
started on such a build and says what to run; `make test` makes the venv again first.
"""

from __future__ import annotations

import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTENSION_SUFFIX: str = sysconfig.get_config_var("EXT_SUFFIX")


def compiled_sources(root: Path = ROOT) -> list[Path]:
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    return [root / source for source in pyproject["tool"]["idaas-bridge"]["compiled-modules"]]


def module_name(source: Path, root: Path = ROOT) -> str:
    return ".".join(source.relative_to(root).with_suffix("").parts)


def extension_of(source: Path) -> Path:
    return source.with_name(source.stem + EXTENSION_SUFFIX)


def out_of_date(root: Path = ROOT) -> list[str]:
    """What is wrong with the build in the tree, one line each; none when every compiled module is current."""
    problems = []
    sources = compiled_sources(root)
    for source in sources:
        extension = extension_of(source)
        if not extension.exists():
            problems.append(f"{source.relative_to(root)} is not compiled")
        elif extension.stat().st_mtime < source.stat().st_mtime:
            problems.append(f"{source.relative_to(root)} changed after it was compiled")
    wanted = {extension_of(source) for source in sources}
    for extension in sorted((root / "bridge").rglob("*" + EXTENSION_SUFFIX)):
        if extension not in wanted:
            problems.append(f"{extension.relative_to(root)} is left from a module no longer compiled")
    return problems
