"""Creating, upgrading and checking the database."""

from __future__ import annotations

from campaign.store import migrate
from campaign.store.engine import Database


def init_database(db: Database) -> str:
    """Create the database (a SQLite file and its directory) and its schema, or upgrade the schema to the
    newest revision; returns the revision. Safe to run again. The only place a database file is created."""
    db.create()
    return migrate.upgrade(db)


def upgrade_database(db: Database) -> str:
    """Upgrade the schema of an existing database to the newest revision; returns it. Safe to run again.

    Unlike :func:`init_database` it creates nothing: a missing SQLite file is a :class:`StorageError`.
    """
    return migrate.upgrade(db)


def require_current_schema(db: Database) -> None:
    """Raise :class:`StorageError` (with the command to run) unless the schema is up to date."""
    migrate.check_current(db)


def schema_status(db: Database) -> tuple[str | None, str]:
    """(the database's revision or None, the code's head revision)."""
    return migrate.current_revision(db), migrate.head_revision()
