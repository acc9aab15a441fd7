"""installation id: names Message-IDs, calendar UIDs and List-Ids apart from every other database's

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:00:00

The id is made here, so that a new database gets one at ``campaign init`` and an existing one when it is
upgraded; running the upgrade again finds the revision current and never makes another. Events that exist
already keep the calendar UID their invitations went out with (``event-<id>@<domain>``, in
``events.calendar_uid``): a reminder or update must replace that calendar entry, not add a second one.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import campaign.store.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def new_installation_id() -> str:
    """80 random bits as 16 lower-case base32 characters: a valid dot-atom label (RFC 2919 List-Ids)."""
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


def upgrade() -> None:
    table = op.create_table(
        "installation",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", campaign.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )
    op.bulk_insert(table, [{"id": new_installation_id(), "created_at": datetime.now(UTC)}])
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("calendar_uid", sa.String(length=100), nullable=True))
    events = sa.table("events", sa.column("id", sa.Integer), sa.column("calendar_uid", sa.String))
    op.execute(events.update().values(calendar_uid=sa.literal("event-") + sa.cast(events.c.id, sa.String)))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("calendar_uid")
    op.drop_table("installation")
