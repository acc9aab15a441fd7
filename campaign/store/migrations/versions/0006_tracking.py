"""tracking: stored link destinations, registrations, per-event unsubscribes, privacy per campaign

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 21:30:00

For the tracking web service: ``links`` holds each wave's link destinations (a click token names a message and a
link index, never a URL: nothing but a stored destination can be reached); ``registrations`` records who
registered for an event and how (the registration link, an import, a webhook), with or without a message;
``event_unsubscribes`` those who asked for no more mail about one event; tracking events get the reason a hit
was taken for a machine's; campaigns get ``track_opens`` and ``track_clicks`` (on for existing ones, as before
nothing was tracked but nothing asked not to be either).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from campaign.store.tables import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("track_opens", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch.add_column(sa.Column("track_clicks", sa.Boolean(), server_default=sa.true(), nullable=False))
    with op.batch_alter_table("tracking_events") as batch:
        batch.add_column(sa.Column("machine_reason", sa.String(length=100), nullable=True))
    op.create_table(
        "links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("wave_id", sa.Integer(), nullable=False),
        sa.Column("link_index", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("url_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["wave_id"], ["waves.id"], name="fk_links_wave_id_waves", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_links"),
        sa.UniqueConstraint("wave_id", "link_index", name="uq_links_wave_id_link_index"),
        sa.UniqueConstraint("wave_id", "url_key", name="uq_links_wave_id_url_key"),
    )
    op.create_table(
        "registrations",
        sa.Column("id", big_id, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", big_id, nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("message_id", big_id, nullable=True),
        sa.Column("registered_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_registrations_contact_id_contacts", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name="fk_registrations_event_id_events", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_registrations_message_id_messages", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_registrations"),
        sa.UniqueConstraint("event_id", "contact_id", "source", name="uq_registrations_event_id_contact_id_source"),
    )
    op.create_index("ix_registrations_contact_id", "registrations", ["contact_id"])
    op.create_table(
        "event_unsubscribes",
        sa.Column("id", big_id, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("message_id", big_id, nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name="fk_event_unsubscribes_event_id_events", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_event_unsubscribes_message_id_messages", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_event_unsubscribes"),
        sa.UniqueConstraint("event_id", "email_key", name="uq_event_unsubscribes_event_id_email_key"),
    )


def downgrade() -> None:
    op.drop_table("event_unsubscribes")
    op.drop_index("ix_registrations_contact_id", table_name="registrations")
    op.drop_table("registrations")
    op.drop_table("links")
    with op.batch_alter_table("tracking_events") as batch:
        batch.drop_column("machine_reason")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("track_clicks")
        batch.drop_column("track_opens")
