"""claiming reads one index range: (wave, status, due time)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 06:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_messages_wave_id_status", table_name="messages")
    op.drop_index("ix_messages_status_next_attempt_at", table_name="messages")
    op.create_index(
        "ix_messages_due", "messages", ["wave_id", "status", sa.text("coalesce(lease_expires_at, next_attempt_at, scheduled_at)")]
    )


def downgrade() -> None:
    op.drop_index("ix_messages_due", table_name="messages")
    op.create_index("ix_messages_status_next_attempt_at", "messages", ["status", "next_attempt_at"])
    op.create_index("ix_messages_wave_id_status", "messages", ["wave_id", "status"])
