"""contacts: indexes for searching a list by the start of an address or a name

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 11:00:00

A staff search of a list (``/lists/{id}``: the contacts whose address or name starts with what was typed) walked
the list's members in id order, testing each: a page of matches of a common prefix came at once, but a prefix
that matched few or none read every member, a million at a million contacts. Now
:func:`campaign.store.contacts.list_page` first asks these indexes how many contacts have the prefix (counted up
to a cap) and, when they are few, reads just those and keeps the list's members among them:

* ``ix_contacts_name_search``: ``lower(name)`` (on PostgreSQL in ``text_pattern_ops``);
* ``ix_contacts_email_search`` (PostgreSQL only): ``email_key`` in ``text_pattern_ops``. Under any collation but
  ``C`` the unique index on ``email_key`` cannot serve ``LIKE 'prefix%'``; this one can. SQLite compares text by
  its bytes, and its unique ``email_key`` index serves a prefix range as it is.

Each costs an import one more index entry a contact (on PostgreSQL two).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    name = "lower(name) text_pattern_ops" if postgresql else "lower(name)"
    op.create_index("ix_contacts_name_search", "contacts", [sa.text(name)])
    if postgresql:
        op.create_index("ix_contacts_email_search", "contacts", [sa.text("email_key text_pattern_ops")])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_contacts_email_search", table_name="contacts")
    op.drop_index("ix_contacts_name_search", table_name="contacts")
