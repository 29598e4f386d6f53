import pytest

from tests import compiled_build

pytest_plugins = ["tests.kafka_fixtures", "tests.figures", "tests.fake_admin_api"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Test the code as it is: not C extensions mypyc built from older sources (tests/compiled_build.py)."""
    problems = compiled_build.out_of_date()
    if problems:
        pytest.exit(
            "the compiled modules do not match their sources:\n  "
            + "\n  ".join(problems)
            + "\nRun `make venv` to compile them again (`make test` does).",
            returncode=4,
        )
