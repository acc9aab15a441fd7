"""waves: send window, missed reason, expiry relative to the event

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00

Waves get what the scheduler needs: ``window`` (a send window in each recipient's local time, in
``rules.timing.format_window`` form; NULL: none), ``expires_offset_seconds`` (an expiry relative to the event
start, so it moves with the event; ``expires_at`` stays the absolute one, and is written when the wave fires)
and ``missed_reason`` (why a wave whose time passed while nothing fired it, and which expired meanwhile, was
not sent). List members get an index on ``(list_id, added_at)``: the invitation top-up asks every tick who
joined a list since the invitation fired. Contacts get an index on ``timezone``: firing a wave reads the distinct
zones by skipping through it, one seek per zone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("waves") as batch:
        batch.add_column(sa.Column("window", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("expires_offset_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("missed_reason", sa.Text(), nullable=True))
    op.create_index("ix_list_members_list_id_added_at", "list_members", ["list_id", "added_at"])
    op.create_index("ix_contacts_timezone", "contacts", ["timezone"])


def downgrade() -> None:
    op.drop_index("ix_contacts_timezone", table_name="contacts")
    op.drop_index("ix_list_members_list_id_added_at", table_name="list_members")
    with op.batch_alter_table("waves") as batch:
        batch.drop_column("missed_reason")
        batch.drop_column("expires_offset_seconds")
        batch.drop_column("window")
