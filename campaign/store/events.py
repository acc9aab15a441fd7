"""SQL for events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from campaign.models import Event, EventStatus, Speaker
from campaign.store.rows import find_by_reference, from_row
from campaign.store.tables import events


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


def all_events(conn: Connection) -> list[Event]:
    """Every event, soonest first."""
    return [to_event(row) for row in conn.execute(select(events).order_by(events.c.starts_at))]
