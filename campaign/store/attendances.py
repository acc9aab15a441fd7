"""SQL for attendances: who joined an event (the webinar platform's attendee report, ``campaign attendees
import``). One row per event and contact (unique): when they first joined, their minutes in all, and the kind of
file it came from. The ``attended`` and ``not-attended`` audiences (:func:`campaign.store.outbox.
audience_condition`) and the report's ``joined`` (:func:`campaign.store.reports.joined`) read these rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select, update

from campaign.store.dialect import insert_ignoring_conflicts
from campaign.store.tables import attendances


@dataclass(frozen=True, slots=True)
class Attendance:
    """A contact joined an event first at ``joined_at`` (None: the report did not say) and stayed ``minutes`` in
    all (None: not said); ``source`` is the kind of report (``zoom``, ``csv``)."""

    event_id: int
    contact_id: int
    joined_at: datetime | None
    minutes: int | None
    source: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :func:`record` did: attendances ``added``, ``updated`` (an earlier join or a longer stay than
    stored), and ``known`` (stored already, nothing new)."""

    added: int = 0
    updated: int = 0
    known: int = 0


def record(conn: Connection, rows: Sequence[Attendance], now: datetime) -> Recorded:
    """Store each attendance (one per contact in ``rows``, all of one event). One already stored keeps the earlier
    join time and the longer stay of the two: re-importing a report changes nothing, and a second report of the
    same event (a fuller re-export) only adds what it knows more."""
    if not rows:
        return Recorded()
    event_id = rows[0].event_id
    stored = {
        contact_id: (joined_at, minutes)
        for contact_id, joined_at, minutes in conn.execute(
            select(attendances.c.contact_id, attendances.c.joined_at, attendances.c.minutes).where(
                attendances.c.event_id == event_id,
                attendances.c.contact_id.in_(sorted({r.contact_id for r in rows})),
            )
        )
    }
    new, changed, known = [], [], 0
    for row in rows:
        if row.contact_id not in stored:
            new.append(row)
            continue
        joined_at, minutes = stored[row.contact_id]
        earliest = min((t for t in (joined_at, row.joined_at) if t is not None), default=None)
        longest = max((m for m in (minutes, row.minutes) if m is not None), default=None)
        if (earliest, longest) == (joined_at, minutes):
            known += 1
        else:
            changed.append({"contact": row.contact_id, "first_join": earliest, "stay": longest})
    added = 0
    if new:
        values = [
            {
                "event_id": r.event_id,
                "contact_id": r.contact_id,
                "joined_at": r.joined_at,
                "minutes": r.minutes,
                "source": r.source,
                "imported_at": now,
            }
            for r in new
        ]
        # RETURNING names only the rows inserted (another import may have written one a moment ago).
        added = len(
            conn.execute(insert_ignoring_conflicts(conn, attendances).returning(attendances.c.id), values).all()
        )
    if changed:
        stmt = (
            update(attendances)
            .where(attendances.c.event_id == event_id, attendances.c.contact_id == bindparam("contact"))
            .values(joined_at=bindparam("first_join"), minutes=bindparam("stay"), imported_at=now)
        )
        conn.execute(stmt, changed)
    return Recorded(added, len(changed), known + len(new) - added)


def attendee_count(conn: Connection, event_id: int) -> int:
    """How many contacts joined the event (0: no attendance is known yet)."""
    return int(conn.scalar(select(func.count()).where(attendances.c.event_id == event_id)) or 0)
