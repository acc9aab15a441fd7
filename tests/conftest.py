"""Shared fixtures: real SQLite files and a real, throwaway PostgreSQL database.

PostgreSQL tests skip only when no server is reachable, and never when ``CAMPAIGN_TEST_REQUIRE_POSTGRES=1``
(set by ``.ci/run``): there an unreachable server fails the run.

A database with the current schema is made once a run and handed to each test fresh, not migrated again: a copy
of a migrated SQLite file (1 ms against 100 ms for the migrations), and on PostgreSQL the run's database emptied
back to what the migrations left (its rows deleted, the rows the migrations wrote put back, the sequences
restarted: 20 ms against 300 to 700 ms for dropping the schema and migrating). A test that changed the schema
itself (dropped a table, or emptied the schema) is noticed by the schema's fingerprint, and the next test gets
it migrated again from nothing.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _sqlalchemy_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=BACKENDS)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database (no schema) on each backend: a new SQLite file, or a wiped PostgreSQL schema."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'campaign.db'}")
    else:
        dsn = request.getfixturevalue("pg_server")
        _reset_pg_schema(dsn)
        db = Database(_sqlalchemy_url(dsn))
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture(scope="session")
def _migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once for the run, which each test copies (see the module doc)."""
    path = tmp_path_factory.mktemp("migrated") / "campaign.db"
    database = Database(f"sqlite:///{path}")
    init_database(database)
    database.dispose()  # the last connection closed: everything is in the main file, none in a WAL
    return path


def _fresh_sqlite(template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "campaign.db"
    shutil.copyfile(template, path)
    database = Database(f"sqlite:///{path}")
    try:
        yield database
    finally:
        database.dispose()


@dataclass
class _PgBaseline:
    """What the migrations leave in the run's PostgreSQL database: its schema's fingerprint, the rows they wrote
    and the sequences, to empty it back to that state between tests (see the module doc)."""

    fingerprint: tuple[Any, ...] | None = None
    seeded: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)

    @staticmethod
    def read_fingerprint(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()
        indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1").fetchall()
        return tuple(columns), tuple(indexes)

    def migrate(self, dsn: str) -> None:
        """Drop the schema, migrate from nothing, remember the result."""
        _reset_pg_schema(dsn)
        database = Database(_sqlalchemy_url(dsn))
        init_database(database)
        database.dispose()
        with psycopg.connect(dsn, autocommit=True) as conn:
            self.fingerprint = self.read_fingerprint(conn)
            self.tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            self.sequences = [
                r[0] for r in conn.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            ]
            self.seeded = {}
            for table in self.tables:
                rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
                if rows:
                    self.seeded[table] = rows

    def restore(self, dsn: str) -> None:
        """Empty the database back to what the migrations left, or migrate it again if its schema changed."""
        if self.fingerprint is not None:
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    if self.read_fingerprint(conn) == self.fingerprint:
                        with conn.transaction():
                            # Rows go in any order: foreign keys are not checked while the rows the migrations
                            # wrote are put back as they were (a superuser's setting; otherwise: migrate again).
                            conn.execute("SET LOCAL session_replication_role = replica")
                            for table in self.tables:
                                conn.execute(f'DELETE FROM "{table}"')
                            for table, rows in self.seeded.items():
                                marks = ", ".join(["%s"] * len(rows[0]))
                                with conn.cursor() as cursor:
                                    cursor.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
                            for sequence in self.sequences:
                                conn.execute(f'ALTER SEQUENCE "{sequence}" RESTART')
                        return
            except psycopg.Error:
                pass  # not allowed to skip the foreign keys, or the schema is broken: migrate again below
        self.migrate(dsn)


@pytest.fixture(scope="session")
def _pg_baseline() -> _PgBaseline:
    return _PgBaseline()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with the current schema, on each backend (fresh for each test: see the module doc)."""
    if request.param == "sqlite":
        yield from _fresh_sqlite(request.getfixturevalue("_migrated_sqlite_file"), tmp_path)
        return
    dsn = request.getfixturevalue("pg_server")
    request.getfixturevalue("_pg_baseline").restore(dsn)
    database = Database(_sqlalchemy_url(dsn))
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def sqlite_db(_migrated_sqlite_file: Path, tmp_path: Path) -> Iterator[Database]:
    """A database with the current schema in a new SQLite file (for tests about SQLite itself)."""
    yield from _fresh_sqlite(_migrated_sqlite_file, tmp_path)


@pytest.fixture
def kathmandu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This machine's local zone is Asia/Kathmandu (UTC+05:45), so local time and UTC differ visibly."""
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


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
