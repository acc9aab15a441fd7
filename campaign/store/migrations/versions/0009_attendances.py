"""attendances: who joined an event, from the webinar platform's attendee report

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 02:30:00

``campaign attendees import`` records each contact who joined an event once (unique per event and contact, so a
re-import changes nothing): when they first joined, their minutes in all, and the kind of file it came from. The
report's funnel gains its ``joined`` step from it, and waves the ``attended`` / ``not-attended`` audiences.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from campaign.store.tables import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "attendances",
        sa.Column("id", big_id, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", big_id, nullable=False),
        sa.Column("joined_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("minutes", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("imported_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_attendances_contact_id_contacts", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name="fk_attendances_event_id_events", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_attendances"),
        sa.UniqueConstraint("event_id", "contact_id", name="uq_attendances_event_id_contact_id"),
    )
    op.create_index("ix_attendances_contact_id", "attendances", ["contact_id"])


def downgrade() -> None:
    op.drop_index("ix_attendances_contact_id", table_name="attendances")
    op.drop_table("attendances")
