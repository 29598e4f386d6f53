"""The bridge's build: setuptools, with the request path's modules compiled to C extensions by mypyc.

pyproject.toml holds everything else, and under [tool.idaas-bridge] which modules are compiled and why.
"""

import tomllib
from pathlib import Path

from mypyc.build import mypycify
from setuptools import setup

PYPROJECT = tomllib.loads((Path(__file__).parent / "pyproject.toml").read_text())

#: The build's isolated environment has mypy but not the bridge's dependencies: their modules are typed Any
#: here (`make typecheck` checks them, in the venv that has them).
WITHOUT_DEPENDENCIES = [
    "--ignore-missing-imports",
    "--allow-subclassing-any",
    "--no-warn-return-any",
    "--no-warn-unused-ignores",
]

setup(
    ext_modules=mypycify(
        [*WITHOUT_DEPENDENCIES, *PYPROJECT["tool"]["idaas-bridge"]["compiled-modules"]], group_name="bridge"
    )
)
