"""events: when the event's attendee report was last imported whole

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 22:00:00

``attendance_reported_at``: when ``campaign attendees import`` last finished importing the event's attendee report.
A wave to those who attended, or did not, waits for it (:func:`campaign.services.scheduling.fire_due`). Judged by
an attendance being stored instead, a report in which nobody attended (every row "Attended: No") never let such
a wave fire, and one imported in several transactions (5,000 rows each) let it fire after the first, with most
attendees not written yet. Events with attendances take the time the last of them was imported.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from campaign.store.tables import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("attendance_reported_at", UTCDateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE events SET attendance_reported_at = "
        "(SELECT max(a.imported_at) FROM attendances a WHERE a.event_id = events.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("attendance_reported_at")
