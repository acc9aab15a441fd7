"""SQL for tracking events: what recipients did with a message (opened, clicked, downloaded the calendar,
unsubscribed), by a person or a machine.

The tracking recorder (:mod:`campaign.services.tracking`) writes them a batch at a time, one statement whatever
its size, and flags later the clicks a burst reveals as a scanner's; the purge deletes them after the retention
period. The ``opened`` and ``clicked`` audiences read them (:func:`campaign.store.outbox.audience_condition`);
``registered`` reads registrations (:mod:`campaign.store.registrations`), which exist with or without a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from campaign.models import MessageStatus, TrackingKind
from campaign.store.tables import messages, tracking_events


def sent_messages(conn: Connection, wave_id: int) -> list[tuple[int, int]]:
    """A wave's sent messages as (message id, contact id), in the order of their contacts' ids."""
    stmt = (
        select(messages.c.id, messages.c.contact_id)
        .where(messages.c.wave_id == wave_id, messages.c.status == MessageStatus.SENT.value)
        .order_by(messages.c.contact_id)
    )
    return [(message_id, contact_id) for message_id, contact_id in conn.execute(stmt)]


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert tracking events (``tracking_events`` columns); returns how many."""
    if not rows:
        return 0
    conn.execute(insert(tracking_events), list(rows))
    return len(rows)


def flag_clicks(
    conn: Connection, message_id: int, link_index: int | None, since: datetime, until: datetime, reason: str
) -> int:
    """Mark as a machine's, for ``reason``, the message's clicks between ``since`` and ``until`` on a link other
    than ``link_index`` that were taken for a person's (a burst that a later click revealed); returns how many."""
    stmt = (
        update(tracking_events)
        .where(
            tracking_events.c.message_id == message_id,
            tracking_events.c.kind == TrackingKind.CLICK.value,
            tracking_events.c.occurred_at >= since,
            tracking_events.c.occurred_at <= until,
            tracking_events.c.link_index.is_distinct_from(link_index),
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
