"""SQL for events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from campaign.models import Event, EventStatus, Speaker
from campaign.store.tables import events


def to_event(row: Row[Any]) -> Event:
    """Map an events row to an :class:`Event`."""
    m = row._mapping
    return Event(
        id=m["id"],
        slug=m["slug"],
        title=m["title"],
        description=m["description"],
        starts_at=m["starts_at"],
        ends_at=m["ends_at"],
        timezone=m["timezone"],
        registration_url=m["registration_url"],
        join_url=m["join_url"],
        organiser_name=m["organiser_name"],
        organiser_email=m["organiser_email"],
        language=m["language"],
        speakers=tuple(Speaker(name=s["name"], role=s.get("role")) for s in m["speakers"]),
        sequence=m["sequence"],
        status=EventStatus(m["status"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def insert_event(conn: Connection, values: Mapping[str, Any], now: datetime) -> int:
    """Insert an event; returns its id."""
    stmt = insert(events).values(**values, created_at=now, updated_at=now).returning(events.c.id)
    event_id: int = conn.execute(stmt).scalar_one()
    return event_id


def find(conn: Connection, ref: str) -> Event | None:
    """The event whose slug is ``ref``, or whose id is ``ref`` when it is a number."""
    condition = events.c.id == int(ref) if ref.isdigit() else events.c.slug == ref
    row = conn.execute(select(events).where(condition)).first()
    return to_event(row) if row else None


def all_events(conn: Connection) -> list[Event]:
    """Every event, soonest first."""
    return [to_event(row) for row in conn.execute(select(events).order_by(events.c.starts_at))]
