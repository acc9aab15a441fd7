"""Rows several benchmarks start from, generated in SQL (shared by bench/report.py, bench/tracking.py, bench/waves.py).

The list, event and campaign functions insert their rows on the connection given, stamped ``before`` (the
setup's "created" instant), and return the new row's id; none commits. The SQL is portable: SQLite and PostgreSQL
alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, literal, select
from sqlalchemy.sql.expression import CTE, ColumnElement

from campaign.store.tables import UTCDateTime, campaigns, contacts, events, list_members, lists


def when(instant: datetime) -> ColumnElement[datetime]:
    """``instant`` as a SQL literal of the schema's UTC datetime type (for ``INSERT ... SELECT``)."""
    return literal(instant, type_=UTCDateTime())


def numbers(count: int) -> CTE:
    """1 to ``count``, as a recursive CTE with the column ``x``."""
    n = select(literal(1).label("x")).cte("n", recursive=True)
    return n.union_all(select((n.c.x + 1).label("x")).where(n.c.x < count))


def add_list_of_everyone(conn: Connection, before: datetime) -> int:
    """The list "all", with every contact as a member."""
    list_id: int = conn.execute(insert(lists).values(name="all", created_at=before).returning(lists.c.id)).scalar_one()
    conn.execute(
        insert(list_members).from_select(
            ["list_id", "contact_id", "added_at"], select(literal(list_id), contacts.c.id, when(before))
        )
    )
    return list_id


def add_event(conn: Connection, starts: datetime, before: datetime) -> int:
    """The scheduled event "e", an hour long from ``starts``, in Zurich."""
    event_id: int = conn.execute(
        insert(events)
        .values(slug="e", title="E", description="", starts_at=starts, ends_at=starts + timedelta(hours=1),
                timezone="Europe/Zurich", language="en", speakers=[], sequence=0, status="scheduled",
                created_at=before, updated_at=before)
        .returning(events.c.id)
    ).scalar_one()  # fmt: skip
    return event_id


def add_sending_campaign(conn: Connection, event_id: int, list_id: int, before: datetime, launched_at: datetime) -> int:
    """The campaign "c" for the event to the list, launched at ``launched_at`` and still sending."""
    campaign_id: int = conn.execute(
        insert(campaigns)
        .values(name="c", event_id=event_id, list_id=list_id, status="sending", created_at=before,
                updated_at=before, launched_at=launched_at)
        .returning(campaigns.c.id)
    ).scalar_one()  # fmt: skip
    return campaign_id
