"""SQL for registrations: who registered for an event, and how (:class:`campaign.models.RegistrationSource`).

A registration names an event and a contact, not a message: someone who registered on the webinar platform
(an import, its webhook) counts as much as someone who clicked the registration link in an invitation. The
``registered`` and ``not-registered`` audiences read these rows for the campaign's event, whatever their source
(:func:`campaign.store.outbox.audience_condition`), through the unique (event, contact, source) index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from campaign.models import RegistrationSource
from campaign.store.dialect import insert_ignoring_conflicts
from campaign.store.tables import registrations


@dataclass(frozen=True, slots=True)
class Registration:
    """A contact registered for an event at ``registered_at``, known by ``source``; ``message_id`` is the
    message whose registration link was clicked, None when it was learnt elsewhere."""

    event_id: int
    contact_id: int
    source: RegistrationSource
    registered_at: datetime
    message_id: int | None = None


def record(conn: Connection, rows: Sequence[Registration], now: datetime) -> int:
    """Store each registration; one already stored for the same event, contact and source is kept as it is (its
    first time stands: a second click or a re-import changes nothing). Returns how many were added."""
    if not rows:
        return 0
    values = [
        {
            "event_id": r.event_id,
            "contact_id": r.contact_id,
            "source": r.source.value,
            "message_id": r.message_id,
            "registered_at": r.registered_at,
            "created_at": now,
        }
        for r in rows
    ]
    # RETURNING names only the rows inserted: a row count of a many-row execution is not reliable everywhere.
    stmt = insert_ignoring_conflicts(conn, registrations).returning(registrations.c.id)
    return len(conn.execute(stmt, values).all())


def registered_contacts(conn: Connection, event_id: int) -> list[int]:
    """The ids of the contacts registered for the event (by any source), in order."""
    stmt = (
        select(registrations.c.contact_id)
        .where(registrations.c.event_id == event_id)
        .distinct()
        .order_by(registrations.c.contact_id)
    )
    return list(conn.scalars(stmt))


def counts_by_source(conn: Connection, event_id: int) -> dict[RegistrationSource, int]:
    """How many contacts each source says registered for the event (a contact known by two sources counts in
    both; :func:`registered_contacts` counts each once). Sources with none are absent."""
    stmt = (
        select(registrations.c.source, func.count())
        .where(registrations.c.event_id == event_id)
        .group_by(registrations.c.source)
    )
    return {RegistrationSource(source): count for source, count in conn.execute(stmt)}
