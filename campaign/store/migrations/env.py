"""Alembic environment: always runs on a connection handed over by :mod:`campaign.store.migrate`."""

from __future__ import annotations

from alembic import context

from campaign.store.tables import metadata, on_this_backend

connection = context.config.attributes["connection"]
# render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table instead. include_object: the
# indexes one backend has and the other not are compared only on theirs.
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
    include_object=on_this_backend(connection.dialect.name),
)
with context.begin_transaction():
    context.run_migrations()
