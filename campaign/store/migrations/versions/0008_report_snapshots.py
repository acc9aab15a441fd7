"""report snapshots: the dashboard's counted reports, kept between restarts

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 01:30:00

Counting the report of a campaign of a million messages takes seconds; the dashboard keeps what it counted in
``report_snapshots`` (one row per page view: its key, the shape of the body, when the counting began, the body as
JSON), so that the first page after a restart is answered from the last count while a new one runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from campaign.store.tables import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_snapshots",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("shape", sa.String(length=40), nullable=False),
        sa.Column("computed_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_report_snapshots"),
    )


def downgrade() -> None:
    op.drop_table("report_snapshots")
