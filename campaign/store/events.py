"""SQL for events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from campaign.models import Event, EventStatus, Speaker
from campaign.store.rows import find_by_reference, from_row
from campaign.store.tables import campaigns, events


def to_event(row: Row[Any]) -> Event:
    """Map an events row to an :class:`Event`."""
    speakers = tuple(Speaker(name=s["name"], role=s.get("role")) for s in row.speakers)
    return from_row(Event, row, speakers=speakers, status=EventStatus(row.status))


def insert_event(conn: Connection, values: Mapping[str, Any], now: datetime) -> int:
    """Insert an event; returns its id."""
    stmt = insert(events).values(**values, created_at=now, updated_at=now).returning(events.c.id)
    event_id: int = conn.execute(stmt).scalar_one()
    return event_id


def find(conn: Connection, ref: str) -> Event | None:
    """The event with id ``ref`` when it is ASCII digits, else the one whose slug is ``ref`` (see
    :func:`~campaign.store.rows.find_by_reference`)."""
    row = find_by_reference(conn, select(events), events.c.id, events.c.slug, ref)
    return to_event(row) if row else None


def lock(conn: Connection, event_id: int) -> Event | None:
    """Inside a write transaction: the event, read again with its row locked until the transaction ends
    (PostgreSQL ``FOR UPDATE``: another update waits for this one, then reads what it wrote; SQLite's writes are
    serialised by ``BEGIN IMMEDIATE``, and SQLAlchemy renders no ``FOR`` there). None: no such event."""
    row = conn.execute(select(events).where(events.c.id == event_id).with_for_update()).first()
    return to_event(row) if row else None


def all_events(conn: Connection) -> list[Event]:
    """Every event, soonest first."""
    return [to_event(row) for row in conn.execute(select(events).order_by(events.c.starts_at))]


def update_event(conn: Connection, event_id: int, values: Mapping[str, Any], *, sequence: int, now: datetime) -> bool:
    """Write an event's new values and SEQUENCE if it is still scheduled; False when it was cancelled meanwhile."""
    stmt = (
        update(events)
        .where(events.c.id == event_id, events.c.status == EventStatus.SCHEDULED.value)
        .values(**values, sequence=sequence, updated_at=now)
    )
    return bool(conn.execute(stmt).rowcount == 1)


def mark_cancelled(conn: Connection, event_id: int, *, sequence: int, now: datetime) -> bool:
    """``scheduled → cancelled`` with the new SEQUENCE; False when it was cancelled already (a compare-and-set:
    two cancellations at once send one notice)."""
    stmt = (
        update(events)
        .where(events.c.id == event_id, events.c.status == EventStatus.SCHEDULED.value)
        .values(status=EventStatus.CANCELLED.value, sequence=sequence, updated_at=now)
    )
    return bool(conn.execute(stmt).rowcount == 1)


def mark_attendance_reported(conn: Connection, event_id: int, now: datetime) -> None:
    """Record that the event's attendee report was imported whole at ``now``."""
    conn.execute(update(events).where(events.c.id == event_id).values(attendance_reported_at=now))


def of_campaign(conn: Connection, campaign_id: int) -> Event | None:
    """The event of a campaign (None: no such campaign)."""
    stmt = select(events).join(campaigns, campaigns.c.event_id == events.c.id).where(campaigns.c.id == campaign_id)
    row = conn.execute(stmt).first()
    return to_event(row) if row else None


def revision_of_campaign(conn: Connection, campaign_id: int) -> tuple[int, datetime] | None:
    """The SEQUENCE and last change of a campaign's event: what a cached renderer of its waves must match."""
    stmt = (
        select(events.c.sequence, events.c.updated_at)
        .join(campaigns, campaigns.c.event_id == events.c.id)
        .where(campaigns.c.id == campaign_id)
    )
    row = conn.execute(stmt).first()
    return (row.sequence, row.updated_at) if row else None
