"""sessions: the time zone of the browser that logged in

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 23:20:00

``timezone``: the IANA zone the staff member's browser said it was in when they logged in (the login form's
hidden field, filled by ``static/zone.js``); staff pages show the times of what happened (the audit log, the
figures' "as of", a list's import) on that clock, with its CLDR name. NULL (a browser without scripts, or a session
opened before this migration): those times are shown in UTC, saying so.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("timezone")
