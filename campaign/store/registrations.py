"""SQL for registrations: who registered for an event, and how (:class:`campaign.models.RegistrationSource`).

A registration names an event and a contact, not a message: someone who registered on the webinar platform
(an import, its webhook) counts as much as someone who clicked the registration link in an invitation. The
``registered`` and ``not-registered`` audiences read these rows for the campaign's event, whatever their source
(:func:`campaign.store.materialise.audience_condition`), through the unique (event, contact, source) index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, Connection, String, bindparam, func, select, true
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeEngine

from campaign.models import CONFIRMED_SOURCES, RegistrationSource, TrackingKind
from campaign.store.dialect import insert_ignoring_conflicts, json_instants, json_rows, sqlite_positional_sql
from campaign.store.tables import UTCDateTime, campaigns, messages, registrations, tracking_events, waves


# A named tuple, not a frozen dataclass: the tracking recorder makes one a person's click on a registration link,
# and a tuple is made in 0.5 µs against 1.2.
class Registration(NamedTuple):
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
    stored = json_instants(conn.dialect)
    created = stored(now)
    # The source's _value_, the attribute behind Enum's value property (0.08 µs against 0.25 a row).
    ready = [(r.event_id, r.contact_id, r.source._value_, r.message_id, stored(r.registered_at), created) for r in rows]
    return _insert_stored(conn, ready, now)


LinkClick = tuple[int, int, int, Any]
"""A person's click on a registration link, as :func:`record_link_clicks` takes it: event, contact, message, and
the click's instant in the form :func:`campaign.store.tracking.insert_event_rows` left it in its row (stored)."""


def record_link_clicks(conn: Connection, clicks: Sequence[LinkClick], now: datetime) -> int:
    """:func:`record` for the tracking recorder's registrations by link, their instants already in stored form
    (each converted once, for the click's row, not again here: 0.7 µs a click; and no :class:`Registration` made
    a click). Returns how many were added."""
    if not clicks:
        return 0
    link, created = RegistrationSource.LINK.value, json_instants(conn.dialect)(now)
    return _insert_stored(
        conn, [(event, contact, link, message, at, created) for event, contact, message, at in clicks], now
    )


def _insert_stored(conn: Connection, rows: list[tuple[Any, ...]], now: datetime) -> int:
    """Insert registrations, each (event, contact, source, message, registered at, created at) with its instants
    in stored form (:func:`~campaign.store.dialect.json_instants`); the first of an event, contact and source
    stands. Returns how many were added.

    On SQLite the driver's executemany of the tuples (bound in C; its row count is the sum of the rows each
    execution added): 3.0 to 3.5 µs a registration against 4.3 to 4.8 for the JSON parameter (batches of 5,000
    new ones, timed on this machine class). On PostgreSQL one JSON parameter, its creation time ``now``."""
    if conn.dialect.name == "sqlite":
        added: int = conn.exec_driver_sql(_sqlite_insert(), rows).rowcount
        return added
    payload = json.dumps([row[:5] for row in rows])
    # RETURNING names only the rows inserted: a row count of a many-row execution is not reliable everywhere.
    return len(conn.execute(_insert(conn), {"rows": payload, "now": now}).all())


_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("event_id", BigInteger()),
    ("contact_id", BigInteger()),
    ("source", String()),
    ("message_id", BigInteger()),
    ("registered_at", UTCDateTime()),
]


@cache
def _sqlite_insert() -> str:
    """The SQLite statement :func:`record` runs a registration (the first of an event, contact and source
    stands)."""
    names = [*(name for name, _ in _COLUMNS), "created_at"]
    stmt = sqlite.insert(registrations).values({n: bindparam(n) for n in names}).on_conflict_do_nothing()
    return sqlite_positional_sql(stmt, names)


def _insert(conn: Connection) -> Any:
    """The batch as one statement and one JSON parameter (:func:`~campaign.store.dialect.json_rows`): binding
    each row's parameters was most of the cost of a registration the tracking recorder writes with a click."""
    rows = json_rows(conn.dialect.name, "rows", _COLUMNS)
    # WHERE true: SQLite would read the ON of ON CONFLICT as the join constraint of the SELECT's FROM otherwise.
    source = select(*(rows.c[name] for name, _ in _COLUMNS), bindparam("now", type_=UTCDateTime())).where(true())
    columns = [*(name for name, _ in _COLUMNS), "created_at"]
    return insert_ignoring_conflicts(conn, registrations).from_select(columns, source).returning(registrations.c.id)


def any_confirmed(conn: Connection, event_id: int) -> bool:
    """Whether the webinar platform confirmed any registration for the event (an import of its export, or its
    webhook: :data:`~campaign.models.CONFIRMED_SOURCES`)."""
    stmt = select(registrations.c.id).where(
        registrations.c.event_id == event_id, registrations.c.source.in_([s.value for s in CONFIRMED_SOURCES])
    )
    return conn.execute(stmt.limit(1)).first() is not None


def withdraw_machine_clicks(conn: Connection, message_id: int, since: datetime, until: datetime) -> int:
    """Delete the registrations by link that clicks on the message between ``since`` and ``until`` made and that
    are now known to be a machine's (a burst a later batch revealed: :func:`campaign.store.tracking.flag_clicks`);
    returns how many. A registration by link has the instant of the click that made it, so that click's row is
    the one at its instant; one that an earlier click made (the first of an event, contact and source stands)
    has another instant and stays. Found by the unique (event, contact, source) index, the message's event and
    contact looked up."""
    message = messages.alias("m")
    event_id = (
        select(campaigns.c.event_id)
        .join(waves, waves.c.campaign_id == campaigns.c.id)
        .join(message, message.c.wave_id == waves.c.id)
        .where(message.c.id == message_id)
        .scalar_subquery()
    )
    contact_id = select(messages.c.contact_id).where(messages.c.id == message_id).scalar_subquery()
    machine_clicks = select(tracking_events.c.occurred_at).where(
        tracking_events.c.message_id == message_id,
        tracking_events.c.kind == TrackingKind.CLICK.value,
        tracking_events.c.is_machine.is_(True),
        tracking_events.c.occurred_at >= since,
        tracking_events.c.occurred_at <= until,
    )
    withdrawn: int = conn.execute(
        registrations.delete().where(
            registrations.c.event_id == event_id,
            registrations.c.contact_id == contact_id,
            registrations.c.source == RegistrationSource.LINK.value,
            registrations.c.message_id == message_id,
            registrations.c.registered_at.in_(machine_clicks),
        )
    ).rowcount
    return withdrawn


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
