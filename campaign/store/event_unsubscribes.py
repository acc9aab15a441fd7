"""SQL for event opt-outs: addresses that asked for no more mail about one event ("from this event only").

The outbox honours them when a wave is materialised and again when a message is claimed
(:mod:`campaign.store.outbox`); the ``suppressions`` table (:mod:`campaign.store.suppressions`) holds those who
asked for no more mail at all.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, exists, select

from campaign.store.dialect import insert_ignoring_conflicts
from campaign.store.tables import event_unsubscribes


def add(conn: Connection, event_id: int, email_key: str, message_id: int | None, now: datetime) -> bool:
    """The address (by its key) leaves the event; True when it had not already (an existing row is kept)."""
    # RETURNING says whether a row went in; rowcount cannot (psycopg reports -1 under the RETURNING SQLAlchemy adds).
    added = conn.execute(
        insert_ignoring_conflicts(conn, event_unsubscribes).returning(event_unsubscribes.c.id),
        {"event_id": event_id, "email_key": email_key, "message_id": message_id, "created_at": now},
    ).first()
    return added is not None


def remove(conn: Connection, event_id: int, email_key: str) -> bool:
    """The address may get mail about the event again; True when it had left it."""
    stmt = delete(event_unsubscribes).where(
        event_unsubscribes.c.event_id == event_id, event_unsubscribes.c.email_key == email_key
    )
    return bool(conn.execute(stmt).rowcount)


def has_left(conn: Connection, event_id: int, email_key: str) -> bool:
    """Whether the address asked for no more mail about the event."""
    condition = exists().where(event_unsubscribes.c.event_id == event_id, event_unsubscribes.c.email_key == email_key)
    return bool(conn.execute(select(condition)).scalar_one())
