"""SQL for tracking events: what recipients did with a message (opened, clicked, registered...).

The ``opened`` and ``clicked`` audiences read these rows (:func:`campaign.store.outbox.audience_condition`);
``registered`` reads registrations (:mod:`campaign.store.registrations`), which exist with or without a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, insert, select

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


def record_events(conn: Connection, message_ids: Sequence[int], kind: TrackingKind, occurred_at: datetime) -> int:
    """One event of ``kind`` (by a person, not a machine) on each message; returns how many were recorded."""
    if not message_ids:
        return 0
    rows = [{"message_id": m, "kind": kind.value, "is_machine": False, "occurred_at": occurred_at} for m in message_ids]
    conn.execute(insert(tracking_events), rows)
    return len(rows)
