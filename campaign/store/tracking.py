"""SQL for tracking events: what recipients did with a message (opened, clicked, registered).

Audiences (``registered``, ``opened``...) read these rows (:func:`campaign.store.outbox.audience_condition`);
the tracking endpoints will write them. Until then the demo records the registrations it simulates here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, insert, select

from campaign.models import MessageStatus, TrackingKind
from campaign.store.tables import messages, tracking_events


def sent_messages(conn: Connection, wave_id: int) -> list[int]:
    """The ids of a wave's sent messages, in the order of their contacts' ids."""
    stmt = (
        select(messages.c.id)
        .where(messages.c.wave_id == wave_id, messages.c.status == MessageStatus.SENT.value)
        .order_by(messages.c.contact_id)
    )
    return list(conn.scalars(stmt))


def record_events(conn: Connection, message_ids: Sequence[int], kind: TrackingKind, occurred_at: datetime) -> int:
    """One event of ``kind`` (by a person, not a machine) on each message; returns how many were recorded."""
    if not message_ids:
        return 0
    rows = [{"message_id": m, "kind": kind.value, "is_machine": False, "occurred_at": occurred_at} for m in message_ids]
    conn.execute(insert(tracking_events), rows)
    return len(rows)
