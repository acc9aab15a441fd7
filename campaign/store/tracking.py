"""SQL for tracking events: what recipients did with a message (opened, clicked, downloaded the calendar,
unsubscribed), by a person or a machine.

The tracking recorder (:mod:`campaign.services.tracking`) writes them a batch at a time, one statement whatever
its size, and flags later the clicks a burst reveals as a scanner's; the purge deletes them after the retention
period. The ``opened`` and ``clicked`` audiences read them (:func:`campaign.store.materialise.audience_condition`);
``registered`` reads registrations (:mod:`campaign.store.registrations`), which exist with or without a message.

Every write here (insert, the re-flagging, the purge) also keeps ``message_activity``, each message's first
opens and clicks by people and its machine, Register and unsubscribe flags, which reports read: not by code here
but by the database's triggers on ``tracking_events`` (migration 0013), so any writer keeps it exact. Their price,
measured with :func:`insert_opens` in batches of 5,000 on ``bench/report.py``'s SQLite data (a busy machine): 9 µs
of CPU an open against 5 µs without the row trigger's upsert; on PostgreSQL one statement trigger a batch, lost in
the noise of wall times (0.12-0.15 s against 0.10-0.20 s a batch). What it saves: 0.37 s of CPU per report (the
per-message grouping of 300,000 events, :func:`campaign.store.reports._facts`). Deleting events works each
touched message's row out again from the events left (the purge: 20,000 events in 0.05 s of CPU on SQLite).
Migration 0014 makes SQLite's insert trigger cheaper (no aggregate; the link looked up for a person's click only):
an open 4.3 → 3.45 µs to insert, a click 4.4 → 3.9 (2.2 to 2.45 without a trigger; driver ``executemany`` of
5,000 new events a batch, a million messages).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Integer,
    String,
    Text,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.types import TypeEngine

from campaign.models import MessageStatus, TrackingKind
from campaign.store.dialect import json_instants, json_rows, sqlite_driver, sqlite_positional_sql
from campaign.store.tables import UTCDateTime, campaigns, messages, tracking_events, waves


def sent_messages(conn: Connection, wave_id: int) -> list[tuple[int, int]]:
    """A wave's sent messages as (message id, contact id), in the order of their contacts' ids."""
    stmt = (
        select(messages.c.id, messages.c.contact_id)
        .where(messages.c.wave_id == wave_id, messages.c.status == MessageStatus.SENT.value)
        .order_by(messages.c.contact_id)
    )
    return [(message_id, contact_id) for message_id, contact_id in conn.execute(stmt)]


_EVENT_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("message_id", BigInteger()),
    ("kind", String()),
    ("link_index", Integer()),
    ("is_machine", Boolean()),
    ("machine_reason", String()),
    ("ip", String()),
    ("user_agent", Text()),
    ("occurred_at", UTCDateTime()),
]


@cache
def _insert_events(dialect_name: str) -> Any:
    """Built once per backend: the recorder runs it with every flush that holds other hits than opens."""
    rows = json_rows(dialect_name, "rows", [*_EVENT_COLUMNS, ("n", Integer())])
    ordered = select(*(rows.c[name] for name, _ in _EVENT_COLUMNS)).order_by(rows.c.n)  # ids in the hits' order
    return insert(tracking_events).from_select([name for name, _ in _EVENT_COLUMNS], ordered)


@cache
def _sqlite_insert_events() -> str:
    """The SQLite statement :func:`insert_events` runs a row, its parameters in the order of the columns."""
    names = [name for name, _ in _EVENT_COLUMNS]
    return sqlite_positional_sql(insert(tracking_events).values({n: bindparam(n) for n in names}), names)


EVENT_COLUMNS = tuple(name for name, _ in _EVENT_COLUMNS)
"""The order of the values of a row :func:`insert_event_rows` takes."""


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert tracking events (``tracking_events`` columns; ``link_index``, ``machine_reason``, ``ip`` and
    ``user_agent`` may be left out: NULL); returns how many. As :func:`insert_event_rows`, for a few rows by name."""
    return insert_event_rows(
        conn,
        [
            [
                r["message_id"],
                r["kind"],
                r.get("link_index"),
                r["is_machine"],
                r.get("machine_reason"),
                r.get("ip"),
                r.get("user_agent"),
                r["occurred_at"],
            ]
            for r in rows
        ],
    )


def insert_event_rows(conn: Connection, rows: Sequence[list[Any]]) -> int:
    """Insert tracking events, each a list of its values in :data:`EVENT_COLUMNS`' order, the last (``occurred_at``)
    an aware instant; returns how many. The lists are given away: each one's instant is replaced by its stored
    form, in place (a row of eight values made again a hit would cost more than the instant's conversion).

    On PostgreSQL one statement and one JSON parameter for the batch, as :func:`insert_opens`: binding each
    row's eight parameters through SQLAlchemy was most of the cost of writing a click (``bench/tracking.py``).
    On SQLite the driver's ``executemany`` of the rows as they are (lists), which binds them in C: 2.7 µs a row against
    5 to 7.7 for the JSON parameter (its text made, then taken apart again by ``json_extract`` a column; a batch
    of 5,000 timed on this machine class).
    """
    if not rows:
        return 0
    stored = json_instants(conn.dialect)
    for row in rows:
        row[-1] = stored(row[-1])
    if conn.dialect.name == "sqlite":
        sqlite_driver(conn).executemany(_sqlite_insert_events(), rows)
        return len(rows)
    # PostgreSQL's JSON rows add each row's position: the ids come back in the hits' order.
    payload = json.dumps([[*row, n] for n, row in enumerate(rows)])
    conn.execute(_insert_events(conn.dialect.name), {"rows": payload})
    return len(rows)


_OPEN_JSON_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("message_id", BigInteger()),
    ("is_machine", Boolean()),
    ("machine_reason", String()),
    ("ip", String()),
    ("user_agent", Text()),
    ("occurred_at", UTCDateTime()),
]


@cache
def _insert_opens(dialect_name: str) -> Any:
    """Built once per backend: the recorder runs it with every flush."""
    rows = json_rows(dialect_name, "rows", [*_OPEN_JSON_COLUMNS, ("n", Integer())])
    kept = (
        select(*(rows.c[name] for name, _ in _OPEN_JSON_COLUMNS), literal(TrackingKind.OPEN.value))
        .join(messages, messages.c.id == rows.c.message_id)
        .join(waves, waves.c.id == messages.c.wave_id)
        .join(campaigns, campaigns.c.id == waves.c.campaign_id)
        .where(campaigns.c.track_opens)
        .order_by(rows.c.n)  # ids in the order of the hits (a join may produce them in another)
    )
    columns = [name for name, _ in _OPEN_JSON_COLUMNS] + ["kind"]
    return insert(tracking_events).from_select(columns, kept).returning(tracking_events.c.is_machine)


OPEN_COLUMNS = ("is_machine", "machine_reason", "ip", "user_agent", "occurred_at", "message_id")
"""The order of the values of an open :func:`insert_opens` takes (the message last: SQLite's statement finds it
after the values)."""
_OPEN_INSTANT = OPEN_COLUMNS.index("occurred_at")
_OPEN_MACHINE = OPEN_COLUMNS.index("is_machine")


@cache
def _sqlite_insert_open() -> str:
    """The SQLite statement :func:`insert_opens` runs an open: inserted from a select of its message that finds
    it only when it exists and its campaign tracks opens."""
    found = (
        select(
            messages.c.id,
            *(bindparam(name) for name in OPEN_COLUMNS[:-1]),
            literal_column(f"'{TrackingKind.OPEN.value}'"),
        )
        .join(waves, waves.c.id == messages.c.wave_id)
        .join(campaigns, campaigns.c.id == waves.c.campaign_id)
        .where(messages.c.id == bindparam("message_id"), campaigns.c.track_opens)
    )
    columns = ["message_id", *OPEN_COLUMNS[:-1], "kind"]
    return sqlite_positional_sql(insert(tracking_events).from_select(columns, found), list(OPEN_COLUMNS))


def insert_opens(conn: Connection, rows: Sequence[list[Any]]) -> tuple[int, int]:
    """Insert opens of the messages that exist and whose campaign tracks opens; the others are left out. Each row
    is a list of its values in :data:`OPEN_COLUMNS`' order, the instant aware; the lists are given away, as
    :func:`insert_event_rows` takes them (each one's instant replaced by its stored form). Returns how many were
    inserted, and how many of them by machines.

    No read of the messages first (opens are most hits): each open is inserted from a select of its message that
    keeps it only when the message exists and its campaign tracks opens. On PostgreSQL one statement and one
    JSON parameter for the batch: a batch is written in 11 µs an open instead of 15 by reading their messages
    and inserting row by row. On SQLite that select a row, run by the driver's ``executemany`` of the rows as
    they are (bound in C), then one count of the rows added (ids above the highest before, in this write
    transaction): 4.5 to 6.3 µs an open against 6 to 7 for the JSON parameter (batches of 5,000, timed on this
    machine class).
    """
    if not rows:
        return 0, 0
    stored = json_instants(conn.dialect)
    for row in rows:
        row[_OPEN_INSTANT] = stored(row[_OPEN_INSTANT])
    if conn.dialect.name == "sqlite":
        # Ids grow (this write transaction holds the lock): what was added is above the highest before.
        last = conn.scalar(select(func.coalesce(func.max(tracking_events.c.id), 0)))
        inserted = sqlite_driver(conn).executemany(_sqlite_insert_open(), rows).rowcount
        if inserted == len(rows):
            return inserted, sum(1 for r in rows if r[_OPEN_MACHINE])
        added, machines = conn.execute(
            select(func.count(), func.count().filter(tracking_events.c.is_machine)).where(tracking_events.c.id > last)
        ).one()
        return int(added), int(machines)
    # The JSON rows in _OPEN_JSON_COLUMNS' order, each with its position (the ids come back in the hits' order).
    order = [OPEN_COLUMNS.index(name) for name, _ in _OPEN_JSON_COLUMNS]
    payload = json.dumps([[*(r[i] for i in order), n] for n, r in enumerate(rows)])
    machine = [flag for (flag,) in conn.execute(_insert_opens(conn.dialect.name), {"rows": payload})]
    return len(machine), sum(machine)


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


def event_id_range(conn: Connection) -> tuple[int, int] | None:
    """The lowest and highest tracking event id, None when there is none (the span a purge walks)."""
    low, high = conn.execute(select(func.min(tracking_events.c.id), func.max(tracking_events.c.id))).one()
    return None if low is None else (int(low), int(high))


def purge_range(conn: Connection, before: datetime, first_id: int, last_id: int) -> int:
    """Delete the tracking events with an id from ``first_id`` to ``last_id`` that occurred before ``before``;
    returns how many. Unsubscribes are kept, their IP address and user agent forgotten: the reports' count of
    them is what people asked for, as their suppressions and opt-outs are, which a purge keeps too.

    By a range of the primary key, not by the time (no index on it: migration 0015): a purge walks the ids in
    ranges, each read once, so its work is the table's size whatever is deleted, each range a short
    transaction, and an event written late (an old time, a high id) is found like any other."""
    t = tracking_events
    old = (t.c.id.between(first_id, last_id), t.c.occurred_at < before)
    unsubscribe = t.c.kind == TrackingKind.UNSUBSCRIBE.value
    deleted: int = conn.execute(t.delete().where(*old, ~unsubscribe)).rowcount
    # Neither column is one message_activity is worked out from: SQLite's update trigger does not fire for them,
    # and PostgreSQL's statement trigger works the touched messages' rows out again to what they were.
    conn.execute(
        update(t)
        .where(*old, unsubscribe, or_(t.c.ip.is_not(None), t.c.user_agent.is_not(None)))
        .values(ip=None, user_agent=None)
    )
    return deleted
