"""The Alembic migrations produce exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from campaign.exceptions import StorageError
from campaign.services.database import init_database, require_current_schema, schema_status
from campaign.store.engine import Database
from campaign.store.tables import metadata


# Alembic cannot compare expression indexes (ix_messages_due): it says so, and the next test checks that one.
@pytest.mark.filterwarnings("ignore:.*expression-based index:UserWarning", "ignore:.*expression-based index")
def test_upgrade_from_empty_yields_exactly_the_models_schema(empty_db: Database) -> None:
    init_database(empty_db)
    with empty_db.read() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
        tables = set(inspect(conn).get_table_names())
    assert differences == []
    assert tables == set(metadata.tables) | {"alembic_version"}


def test_the_due_index_covers_wave_status_and_due_time(empty_db: Database) -> None:
    init_database(empty_db)
    catalogue = (
        "SELECT sql FROM sqlite_master WHERE name = 'ix_messages_due'"
        if empty_db.is_sqlite
        else "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_due'"
    )
    with empty_db.read() as conn:
        definition = " ".join(conn.exec_driver_sql(catalogue).scalar_one().lower().split())
    assert "(wave_id, status, coalesce(lease_expires_at, next_attempt_at, scheduled_at))" in definition.replace('"', "")


def test_upgrade_is_idempotent_and_reports_head(empty_db: Database) -> None:
    first = init_database(empty_db)
    second = init_database(empty_db)
    assert first == second
    assert schema_status(empty_db) == (first, first)


def test_commands_refuse_a_database_without_schema(empty_db: Database) -> None:
    with pytest.raises(StorageError, match="campaign init"):
        require_current_schema(empty_db)
    init_database(empty_db)
    require_current_schema(empty_db)
