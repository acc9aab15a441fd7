"""messages: fewer index entries per delivered message on PostgreSQL (SQLite unchanged)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 06:20:00

A message's claim (queued -> sending) and its result (sending -> sent) each write a row version whose indexed
``status`` changed, so neither is a HOT update and each puts an entry into every index of ``messages`` that the
new version belongs to: five each before this revision, about 1 µs of PostgreSQL CPU per entry (a loop of claims
and results: 27 -> 21.5 µs a message for the three index changes below; see campaign.store.outbox). On PostgreSQL:

* the unique (wave_id, contact_id) constraint and ix_messages_contact_id become one unique (contact_id, wave_id)
  constraint: the same uniqueness (the launch's ``INSERT ... ON CONFLICT DO NOTHING`` names no target), and the
  look-ups by contact (a contact's history, the cascade when a contact is deleted) read its first column;
* the unique constraint on message_id goes: the Message-ID embeds the row id (``c<campaign>.w<wave>.m<id>``), so
  it is unique by construction, and nothing looks a message up by it;
* ix_messages_due holds every row but the ``sent`` ones (``WHERE status <> 'sent'``): the claim and everything
  reading unsent messages by wave still find them there; a delivered message's result makes no entry.

From 10 index entries per delivered message to 5 (claim: primary key, (contact, wave), due; result: primary key,
(contact, wave)). And ``fillfactor`` 70: inserts leave 30% of each page free, so a row's next version mostly
goes on its own page (the space of its earlier versions reclaimed by page pruning) instead of another one found
through the free space map or a new page at the table's end. Neither update can be HOT (both change ``status``),
but staying on the page is cheaper still: about 3 µs of server CPU a message less (a loop of claims and results
over 20,000 messages: 21.4 -> 18.5 µs). It applies to pages written from now on (a ``VACUUM FULL`` rewrites
the rest); the table takes up to 1/0.7 times the pages it did.

SQLite keeps the schema 0001 made (this revision does nothing there): its table constraints change only by
rebuilding the table, and a rebuild of ``messages`` with foreign keys on would delete every row referring to it
(tracking events) or clear their references. The index changes alone would save SQLite nothing that matters
(one writer, and the per-entry cost is small next to its commit).

On a big table the index builds lock ``messages`` against writes for their duration (a migration runs in one
transaction, so not ``CONCURRENTLY``): run it between campaigns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_DUE = ["wave_id", "status", sa.text("coalesce(lease_expires_at, next_attempt_at, scheduled_at)")]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_unique_constraint("uq_messages_contact_id_wave_id", "messages", ["contact_id", "wave_id"])
    op.drop_constraint("uq_messages_wave_id_contact_id", "messages", type_="unique")
    op.drop_index("ix_messages_contact_id", table_name="messages")
    op.drop_constraint("uq_messages_message_id", "messages", type_="unique")
    op.drop_index("ix_messages_due", table_name="messages")
    op.create_index("ix_messages_due", "messages", _DUE, postgresql_where=sa.text("status != 'sent'"))
    op.execute("ALTER TABLE messages SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE messages RESET (fillfactor)")
    op.drop_index("ix_messages_due", table_name="messages")
    op.create_index("ix_messages_due", "messages", _DUE)
    op.create_unique_constraint("uq_messages_message_id", "messages", ["message_id"])
    op.create_index("ix_messages_contact_id", "messages", ["contact_id"])
    op.create_unique_constraint("uq_messages_wave_id_contact_id", "messages", ["wave_id", "contact_id"])
    op.drop_constraint("uq_messages_contact_id_wave_id", "messages", type_="unique")
