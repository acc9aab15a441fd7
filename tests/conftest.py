"""Shared fixtures: real SQLite files and a real, throwaway PostgreSQL database.

PostgreSQL tests skip only when no server is reachable, and never when ``CAMPAIGN_TEST_REQUIRE_POSTGRES=1``
(set by ``.ci/run``): there an unreachable server fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from campaign.cli import cli
from campaign.services.database import init_database
from campaign.store.engine import Database

PG_ADMIN_DSN = os.environ.get("CAMPAIGN_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("CAMPAIGN_TEST_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (dropped at the end); yields its psycopg DSN base."""
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (CAMPAIGN_TEST_REQUIRE_POSTGRES=1) but unreachable: {exc}")
        pytest.skip(f"no PostgreSQL server reachable at {PG_ADMIN_DSN}")
    name = f"campaign_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _reset_pg_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database (no schema) on each backend: a new SQLite file, or a wiped PostgreSQL schema."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'campaign.db'}")
    else:
        dsn = request.getfixturevalue("pg_server")
        _reset_pg_schema(dsn)
        db = Database(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def db(empty_db: Database) -> Database:
    """A database with the current schema, on each backend."""
    init_database(empty_db)
    return empty_db


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """A database with the current schema in a new SQLite file (for tests about SQLite itself)."""
    database = Database(f"sqlite:///{tmp_path / 'campaign.db'}")
    init_database(database)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def write_csv(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a CSV file from text or bytes: ``write_csv("email\\na@example.org\\n", name="x.csv")``."""

    def write(content: str | bytes, name: str = "contacts.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
        return path

    return write


DATA = Path(__file__).resolve().parent.parent / "data"


def cli_ok(config: Path) -> Callable[..., str]:
    """Run ``campaign --config CONFIG ARGS...`` in-process (``input``: its standard input), assert it succeeded,
    return its output."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> str:
        result = runner.invoke(cli, ["--config", str(config), *args], input=input)
        assert result.exit_code == 0, result.output
        return result.output

    return run
