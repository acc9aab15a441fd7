"""Schema migrations with Alembic: create, upgrade and check the database schema.

Contract: :func:`upgrade` brings any database (empty or older) to the head revision and is safe to run
again; :func:`check_current` raises :class:`StorageError` with the command to run when the schema is
missing or behind, so that no command works against a half-made database.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from campaign.exceptions import StorageError
from campaign.store.engine import Database

_MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """An Alembic configuration pointing at the package's migration scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts"
    return head


def current_revision(db: Database) -> str | None:
    """The database's revision, or None when it has no schema yet."""
    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> str:
    """Upgrade the schema to ``revision`` (default: head); returns the revision now current."""
    cfg = alembic_config()
    with db.write() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return current_revision(db) or "base"


def check_current(db: Database) -> None:
    """Raise :class:`StorageError` unless the database schema is at the head revision."""
    current = current_revision(db)
    if current is None:
        raise StorageError(f"{db.describe()} has no campaign schema yet: run `campaign init`")
    if current != head_revision():
        raise StorageError(
            f"{db.describe()} is at schema {current}, the code needs {head_revision()}: run `campaign db upgrade`"
        )
