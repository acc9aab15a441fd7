"""waves: when each wave's timing was last decided

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 21:00:00

``planned_at``: when the wave's time was last decided: its creation, an edit of its timing (``campaign waves
edit --at``), or its event moving (an offset's time moves with the event). The launch skips a wave planned
before it whose own time had passed by then (a campaign launched three days before the event does not send its
``-7d`` last chance with the invitation, :func:`campaign.services.scheduling.skipped_at_launch`); it read the
wave's ``created_at``, so a wave moved after the launch to a time that had passed, by an edit or by its event
moving earlier, was marked missed "its time had passed when the campaign was launched", which was not so, where
a wave added with that time fires at once. Existing waves take their creation time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from campaign.store.tables import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("waves") as batch:
        batch.add_column(sa.Column("planned_at", UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE waves SET planned_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("waves") as batch:
        batch.drop_column("planned_at")
