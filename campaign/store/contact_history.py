"""SQL for one contact's history: the messages it was sent and what it did with them (the contact's page).

Both reads start from the messages' index led by ``contact_id`` (``ix_messages_contact_id`` on SQLite, the unique
(contact, wave) one on PostgreSQL: a contact has a message per wave it was in, a handful), then
reach the waves and campaigns by their keys and the tracking events by ``ix_tracking_events_message_id_kind``:
the cost is the contact's own rows, whatever the size of the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from campaign.store.tables import campaigns, messages, tracking_events, waves


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message of a contact: its campaign and wave, its status and times."""

    campaign_id: int
    campaign: str
    wave: str
    status: str
    scheduled_at: datetime
    sent_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Activity:
    """One tracking event of a contact's messages."""

    occurred_at: datetime
    kind: str
    campaign: str
    wave: str
    url: str | None
    machine_reason: str | None
    is_machine: bool


def messages_of(conn: Connection, contact_id: int, limit: int) -> list[SentMessage]:
    """The contact's newest ``limit`` messages, newest first."""
    stmt = (
        select(
            campaigns.c.id,
            campaigns.c.name,
            waves.c.name,
            messages.c.status,
            messages.c.scheduled_at,
            messages.c.sent_at,
            messages.c.last_error,
        )
        .join(waves, waves.c.id == messages.c.wave_id)
        .join(campaigns, campaigns.c.id == waves.c.campaign_id)
        .where(messages.c.contact_id == contact_id)
        .order_by(messages.c.scheduled_at.desc(), messages.c.id.desc())
        .limit(limit)
    )
    return [SentMessage(*row) for row in conn.execute(stmt)]


def activity_of(conn: Connection, contact_id: int, limit: int) -> list[Activity]:
    """The newest ``limit`` tracking events of the contact's messages, newest first."""
    stmt = (
        select(
            tracking_events.c.occurred_at,
            tracking_events.c.kind,
            campaigns.c.name,
            waves.c.name,
            tracking_events.c.url,
            tracking_events.c.machine_reason,
            tracking_events.c.is_machine,
        )
        .join(messages, messages.c.id == tracking_events.c.message_id)
        .join(waves, waves.c.id == messages.c.wave_id)
        .join(campaigns, campaigns.c.id == waves.c.campaign_id)
        .where(messages.c.contact_id == contact_id)
        .order_by(tracking_events.c.occurred_at.desc(), tracking_events.c.id.desc())
        .limit(limit)
    )
    return [Activity(*row) for row in conn.execute(stmt)]
