"""rate_limits: the send-rate token buckets every delivery worker shares (scale-out)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 03:45:00

One row per bucket of the ``[delivery]`` rate limits (``second``, ``hour``, ``domain:<recipient domain>``): the
tokens left and when they were last refilled (seconds since the epoch), and what the last take granted. Workers
take tokens a batch at a time in one statement (:mod:`campaign.store.rate_limits`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.Float(), nullable=False),
        sa.Column("granted", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_rate_limits"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
