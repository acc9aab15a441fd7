"""waves: the event as it was before an update, for the update notice

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 21:00:00

An update wave (``campaign events update``) gets ``event_before``: the event's time and place before the update,
as JSON, so the notice can say what changed ("moved from Tuesday 09:00 to Thursday 15:00", in each recipient's
zone). NULL for every other wave, and for update waves made before this revision (their notice says only how the
event now stands, as it did).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("waves") as batch:
        batch.add_column(sa.Column("event_before", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("waves") as batch:
        batch.drop_column("event_before")
