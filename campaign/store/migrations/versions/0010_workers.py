"""workers: the registry of delivery workers and schedulers (scale-out)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 02:30:00

One row per ``campaign worker`` (and per ``campaign serve``'s delivery worker and scheduler): who it is (host,
pid), since when, its last heartbeat, its counts since it started and its recent rate; for a scheduler, whether it
leads or stands by. ``campaign workers`` lists it; ``campaign status`` names the leader from it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from campaign.store.tables import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed", sa.BigInteger(), nullable=False),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("lost", sa.BigInteger(), nullable=False),
        sa.Column("in_hand", sa.Integer(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_workers"),
    )


def downgrade() -> None:
    op.drop_table("workers")
