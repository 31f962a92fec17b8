"""Shared fixtures.

- Every test gets its own frugal data folder and no user config, so nothing touches the
  developer's real ledger.
- ``ledger_url`` runs a test once on a SQLite file and once on a real PostgreSQL server
  (``FRUGAL_TEST_POSTGRES_URL``; ``scripts/start_postgres.sh`` starts one). Without a server the
  PostgreSQL case skips, unless ``FRUGAL_REQUIRE_POSTGRES=1`` (CI), where it fails.
- ``shared_data`` is ``../shared/data`` (real datasets, or ``FRUGAL_SHARED_DATA``); tests that
  need it skip clearly when it is absent, unless ``FRUGAL_REQUIRE_SHARED_DATA=1`` (CI), where
  they fail.

``.ci/run`` sets every ``FRUGAL_REQUIRE_*`` flag: in CI a suite that cannot run is a failure,
never a silent skip (``tests/test_require_flags.py`` checks each flag).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FRUGAL_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    home = tmp_path_factory.mktemp("frugal-home")
    monkeypatch.setenv("FRUGAL_HOME", str(home))
    monkeypatch.setenv("FRUGAL_CONFIG", str(home / "no-config.toml"))
    monkeypatch.delenv("FRUGAL_LEDGER", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home


def _postgres_admin_url() -> str | None:
    return os.environ.get("FRUGAL_TEST_POSTGRES_URL")


def _require(flag: str) -> bool:
    return os.environ.get(flag, "") not in ("", "0")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    admin = _postgres_admin_url()
    if not admin:
        if _require("FRUGAL_REQUIRE_POSTGRES"):
            pytest.fail("FRUGAL_REQUIRE_POSTGRES is set but FRUGAL_TEST_POSTGRES_URL is not")
        pytest.skip(
            "no PostgreSQL server: set FRUGAL_TEST_POSTGRES_URL "
            '(eval "$(bash scripts/start_postgres.sh)")'
        )
    import sqlalchemy as sa

    name = f"frugal_t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as e:
        if _require("FRUGAL_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL at FRUGAL_TEST_POSTGRES_URL is not reachable: {e}")
    url = sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ledger URL for an empty ledger, once per backend (conformance tests)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        missing = f"real datasets not found at {SHARED_DATA} (set FRUGAL_SHARED_DATA)"
        if _require("FRUGAL_REQUIRE_SHARED_DATA"):
            pytest.fail(f"FRUGAL_REQUIRE_SHARED_DATA is set but {missing}", pytrace=False)
        pytest.skip(missing)
    return SHARED_DATA


def _run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    input: str | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "frugalml", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        input=input,
        cwd=cwd,
    )


@pytest.fixture
def cli():  # type: ignore[no-untyped-def]
    """Run the real ``frugal`` command line (``python -m frugalml ARGS``) in a subprocess.

    ``cli("runs", "--json")`` returns the ``CompletedProcess`` (text stdout/stderr). The
    subprocess inherits this test's isolated FRUGAL_HOME.
    """
    return _run_cli
