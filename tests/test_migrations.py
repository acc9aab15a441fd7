"""The Alembic migrations produce exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from campaign.exceptions import StorageError
from campaign.services.database import init_database, require_current_schema, schema_status
from campaign.store.engine import Database
from campaign.store.tables import metadata, on_this_backend


# Alembic cannot compare expression indexes (ix_messages_due): it says so, and the next test checks that one.
@pytest.mark.filterwarnings("ignore:.*expression-based index:UserWarning", "ignore:.*expression-based index")
def test_upgrade_from_empty_yields_exactly_the_models_schema(empty_db: Database) -> None:
    init_database(empty_db)
    with empty_db.read() as conn:
        # Each backend's own indexes of messages (campaign.store.tables.ONLY_ON).
        opts = {"compare_type": True, "include_object": on_this_backend(conn.dialect.name)}
        context = MigrationContext.configure(conn, opts=opts)
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
    # PostgreSQL's holds no sent message (a delivered message's result makes no entry in it); SQLite's every one.
    assert ("where ((status)::text <> 'sent'::text)" in definition) is not empty_db.is_sqlite, definition


@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_messages_have_each_backends_indexes(empty_db: Database) -> None:
    """PostgreSQL: three indexes (migration 0012); SQLite: the five 0001 and 0002 made (its table constraints
    stay as they are: see the migration). ix_messages_due, which the test above checks, is not reflected on
    SQLite (an expression index)."""
    init_database(empty_db)
    with empty_db.read() as conn:
        found = inspect(conn)
        names = {i["name"] for i in found.get_indexes("messages")} | {
            u["name"] for u in found.get_unique_constraints("messages")
        }
        unique = {tuple(u["column_names"]) for u in found.get_unique_constraints("messages")}
    if empty_db.is_sqlite:
        assert names == {"ix_messages_contact_id", "uq_messages_wave_id_contact_id", "uq_messages_message_id"}
        assert unique == {("wave_id", "contact_id"), ("message_id",)}
    else:
        assert names == {"ix_messages_due", "uq_messages_contact_id_wave_id"}
        assert unique == {("contact_id", "wave_id")}


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
