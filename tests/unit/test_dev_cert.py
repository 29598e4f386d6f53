"""deploy/dev/dev-cert.sh: the development certificate `make run`, `make simulate` and the tests use."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
SCRIPT: Final = ROOT / "deploy/dev/dev-cert.sh"
#: What `openssl x509 -text` names each DEV_CERT_KEY's public key.
ALGORITHMS: Final = {"ec": "id-ecPublicKey", "rsa": "rsaEncryption"}


def make(directory: Path, kind: str | None) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name != "DEV_CERT_KEY"}
    if kind is not None:
        env["DEV_CERT_KEY"] = kind
    return subprocess.run([str(SCRIPT), str(directory)], env=env, capture_output=True, text=True, check=False)


def algorithm(directory: Path) -> str:
    text = subprocess.run(
        ["openssl", "x509", "-in", str(directory / "dev-cert.pem"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if "Public Key Algorithm" in line)


@pytest.mark.parametrize(("first", "then"), [(None, "rsa"), ("rsa", None), ("rsa", "ec")])
def test_the_key_asked_for_is_the_key_made_even_over_an_earlier_certificate(
    tmp_path: Path, first: str | None, then: str | None
) -> None:
    """`.cache/dev` outlives a run: a certificate of the other kind there (an older checkout's RSA one, or
    one made for a measurement) must not stand in silently for the kind asked for."""
    assert make(tmp_path, first).returncode == 0
    assert algorithm(tmp_path) == ALGORITHMS[first or "ec"]
    assert make(tmp_path, then).returncode == 0
    assert algorithm(tmp_path) == ALGORITHMS[then or "ec"]


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_a_certificate_of_the_kind_asked_for_is_kept(tmp_path: Path, kind: str) -> None:
    """A running `make run` bridge and the clients that trust its certificate keep working."""
    assert make(tmp_path, kind).returncode == 0
    made = (tmp_path / "dev-cert.pem").read_bytes(), (tmp_path / "dev-key.pem").read_bytes()
    assert make(tmp_path, kind).returncode == 0
    assert ((tmp_path / "dev-cert.pem").read_bytes(), (tmp_path / "dev-key.pem").read_bytes()) == made


def test_an_unknown_kind_is_refused_with_the_choices(tmp_path: Path) -> None:
    result = make(tmp_path, "dsa")
    assert result.returncode == 2
    assert "DEV_CERT_KEY=dsa: use ec (the default) or rsa" in result.stderr
    assert not (tmp_path / "dev-cert.pem").exists()
