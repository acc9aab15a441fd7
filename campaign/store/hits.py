"""SQL the tracking recorder runs: what it needs to know of the messages hit, and its batched writes.

One read and one write per batch, whatever its size: the recorder buffers hits (:mod:`campaign.services.
tracking`) so that a burst of opens costs a few statements, not one transaction each.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from campaign.models import TrackingKind
from campaign.store.tables import campaigns, contacts, messages, tracking_events, waves


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What recording a hit on a message needs to know of it."""

    message_id: int
    contact_id: int
    event_id: int
    sent_at: datetime | None
    track_opens: bool
    track_clicks: bool
    email_key: str


_FACTS = (
    select(
        messages.c.id,
        messages.c.contact_id,
        campaigns.c.event_id,
        messages.c.sent_at,
        campaigns.c.track_opens,
        campaigns.c.track_clicks,
        contacts.c.email_key,
    )
    .join(waves, waves.c.id == messages.c.wave_id)
    .join(campaigns, campaigns.c.id == waves.c.campaign_id)
    .join(contacts, contacts.c.id == messages.c.contact_id)
    .where(messages.c.id.in_(bindparam("ids", expanding=True)))
)


def message_facts(conn: Connection, message_ids: Collection[int]) -> dict[int, MessageFacts]:
    """The facts of each of these messages that exists (a token names a message that may have been deleted)."""
    if not message_ids:
        return {}
    return {row[0]: MessageFacts(*row) for row in conn.execute(_FACTS, {"ids": list(message_ids)})}


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert tracking events (``tracking_events`` columns); returns how many."""
    if not rows:
        return 0
    conn.execute(insert(tracking_events), list(rows))
    return len(rows)


def flag_clicks(conn: Connection, message_id: int, since: datetime, reason: str) -> int:
    """Mark the message's clicks since ``since`` that were taken for a person's as a machine's, for ``reason``
    (a burst found with a later click); returns how many."""
    stmt = (
        update(tracking_events)
        .where(
            tracking_events.c.message_id == message_id,
            tracking_events.c.kind == TrackingKind.CLICK.value,
            tracking_events.c.occurred_at >= since,
            tracking_events.c.is_machine.is_(False),
        )
        .values(is_machine=True, machine_reason=reason)
    )
    flagged: int = conn.execute(stmt).rowcount
    return flagged


def purge(conn: Connection, before: datetime) -> int:
    """Delete the tracking events that occurred before ``before``; returns how many."""
    deleted: int = conn.execute(tracking_events.delete().where(tracking_events.c.occurred_at < before)).rowcount
    return deleted
