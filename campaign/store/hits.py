"""SQL the tracking recorder writes: tracking events in batches, machine flags found later, and the purge.

One write per batch, whatever its size: the recorder buffers hits (:mod:`campaign.services.tracking`) so that a
burst of opens costs a few statements, not one transaction each. What it reads of the messages hit is
:func:`campaign.store.recipients.of_messages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, update

from campaign.models import TrackingKind
from campaign.store.tables import tracking_events


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
