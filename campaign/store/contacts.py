"""SQL for contacts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)

from campaign.models import Contact
from campaign.store.dialect import in_keys
from campaign.store.rows import from_row
from campaign.store.tables import UTCDateTime, contacts, lists
from campaign.store.tables import list_members as members

# The columns an import writes; ``id``, ``email_key`` and ``created_at`` are set once, on insert.
CONTACT_FIELDS = (
    "email", "name", "first_name", "last_name", "timezone", "country", "locale", "organisation", "attributes",
)  # fmt: skip


def to_contact(row: Row[Any]) -> Contact:
    """Map a contacts row to a :class:`Contact`."""
    return from_row(Contact, row, attributes=row.attributes or {})


def by_keys(conn: Connection, keys: Sequence[str]) -> dict[str, Contact]:
    """The contacts whose ``email_key`` is in ``keys``, by key."""
    if not keys:
        return {}
    condition, params = in_keys(conn, contacts.c.email_key, keys)
    rows = conn.execute(select(contacts).where(condition), params)
    return {row.email_key: to_contact(row) for row in rows}


def create_many(conn: Connection, rows: Sequence[Mapping[str, Any]], now: datetime) -> None:
    """Insert contacts created ``now``, each row with the same keys: every column but ``id`` and the timestamps.

    The bulk path of an import, where SQLAlchemy's per-row work would cost more than SQLite's: ``now`` is written
    into the statement once, and the rows go to the driver's ``executemany`` with only the values whose column
    type converts them (the JSON attributes) converted, by that type, as SQLAlchemy would. No ids come back.
    """
    if not rows:
        return
    stamp = _timestamp_literal(conn, now)
    dialect = conn.dialect
    names = list(rows[0])
    compiled = insert(contacts).values(created_at=stamp, updated_at=stamp).compile(dialect=dialect, column_keys=names)
    order = list(compiled.positiontup or []) if compiled.positional else names
    converters = []
    for position, name in enumerate(order):
        processor = contacts.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            converters.append((position, processor))
    pick = itemgetter(*order)  # a tuple: a row has at least email and email_key
    params: list[Any] = []
    for row in rows:
        values = list(pick(row))
        for position, processor in converters:
            values[position] = processor(values[position])
        params.append(tuple(values) if compiled.positional else dict(zip(order, values, strict=True)))
    conn.exec_driver_sql(compiled.string, params)


def _timestamp_literal(conn: Connection, value: datetime) -> ColumnElement[datetime]:
    """``value`` as a literal in the SQL text, spelled as this backend stores a :class:`UTCDateTime`.

    For a statement run with many rows that share one timestamp: bound, it would be converted once per row.
    """
    sql = literal(value, UTCDateTime()).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return literal_column(str(sql), UTCDateTime())


def update_many(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Update contacts by id; each row carries ``b_id``, ``updated_at`` and every field of CONTACT_FIELDS."""
    if not rows:
        return
    stmt = (
        update(contacts)
        .where(contacts.c.id == bindparam("b_id"))
        .values({name: bindparam(name) for name in (*CONTACT_FIELDS, "updated_at")})
    )
    conn.execute(stmt, list(rows))


def get(conn: Connection, email_key: str) -> Contact | None:
    """The contact with this key, or None."""
    row = conn.execute(select(contacts).where(contacts.c.email_key == email_key)).first()
    return to_contact(row) if row else None


def lists_of(conn: Connection, contact_id: int) -> list[str]:
    """Names of the lists a contact belongs to."""
    stmt = (
        select(lists.c.name)
        .join(members, members.c.list_id == lists.c.id)
        .where(members.c.contact_id == contact_id)
        .order_by(lists.c.name)
    )
    return list(conn.scalars(stmt))


def search(
    conn: Connection,
    *,
    list_id: int | None = None,
    text: str | None = None,
    without_timezone: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[Contact]:
    """Contacts in address order, optionally in one list, matching ``text``, or lacking a time zone.

    Streams rows (``yield_per``), so exporting a million contacts does not load them all.
    """
    stmt = select(contacts).order_by(contacts.c.email_key).offset(offset).limit(limit)
    if list_id is not None:
        stmt = stmt.join(members, members.c.contact_id == contacts.c.id).where(members.c.list_id == list_id)
    if text:
        pattern = f"%{text.lower()}%"
        stmt = stmt.where(
            or_(
                contacts.c.email_key.like(pattern),
                func.lower(contacts.c.name).like(pattern),
                func.lower(contacts.c.organisation).like(pattern),
            )
        )
    if without_timezone:
        stmt = stmt.where(contacts.c.timezone.is_(None))
    for row in conn.execution_options(yield_per=1000).execute(stmt):
        yield to_contact(row)


def by_ids(conn: Connection, ids: Sequence[int]) -> dict[int, Contact]:
    """Contacts by id."""
    if not ids:
        return {}
    return {row.id: to_contact(row) for row in conn.execute(select(contacts).where(contacts.c.id.in_(ids)))}
