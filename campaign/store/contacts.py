"""SQL for contacts."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_text
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Row,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

from campaign.models import Contact
from campaign.store.dialect import in_keys, upserting_insert
from campaign.store.rows import from_row
from campaign.store.tables import UTCDateTime, contacts, lists
from campaign.store.tables import list_members as members

# The columns an import writes; ``id``, ``email_key`` and ``created_at`` are set once, on insert.
CONTACT_FIELDS = (
    "email", "name", "first_name", "last_name", "timezone", "country", "locale", "organisation", "attributes",
)  # fmt: skip
# What :func:`merge_many` takes for each contact, in this order.
# In the table's order (the order SQLAlchemy binds an insert's values in), attributes last.
MERGED_COLUMNS = ("email", "email_key", *CONTACT_FIELDS[1:])
KEY_AT = MERGED_COLUMNS.index("email_key")
_ATTRIBUTES_AT = MERGED_COLUMNS.index("attributes")


def to_contact(row: Row[Any]) -> Contact:
    """Map a contacts row to a :class:`Contact`."""
    return from_row(Contact, row, attributes=row.attributes or {})


def count_by_keys(conn: Connection, keys: Sequence[str]) -> int:
    """How many of ``keys`` are the ``email_key`` of a stored contact."""
    condition, params = in_keys(conn, contacts.c.email_key, keys)
    return conn.execute(select(func.count()).where(condition), params).scalar_one()


@dataclass(frozen=True, slots=True)
class Merged:
    """What :func:`merge_many` did. On SQLite, the contacts it inserted are exactly those with an id from
    ``first_new_id`` on (until the transaction ends: SQLite has one writer); elsewhere it is None."""

    inserted: int
    updated: int
    first_new_id: int | None = None


def merge_many(conn: Connection, rows: Sequence[tuple[Any, ...]], now: datetime) -> Merged:
    """Insert or merge contacts; each row holds the values of MERGED_COLUMNS, in that order, with unique keys
    and the attributes as JSON text (:func:`attributes_json`).

    A new address is inserted as it is. A stored one takes the row's non-empty values over its own, keeps
    its values where the row has none, and merges attributes by name; it is only written (and its
    ``updated_at`` moved to ``now``) when that changes something. Time zones are not guessed here: see
    :func:`fill_zones`.

    The bulk path of an import, so SQLAlchemy's per-row work is kept out of it: on SQLite the rows go to the
    driver's ``executemany`` as they are; on PostgreSQL, as one JSON array read by a single statement (one
    round trip whatever the number of rows).
    """
    if not rows:
        return Merged(0, 0)
    if conn.dialect.name == "sqlite":
        return _merge_sqlite(conn, rows, now)
    stored = count_by_keys(conn, [row[KEY_AT] for row in rows])
    value = func.json_array_elements(cast(bindparam("rows", type_=Text()), JSON())).column_valued("value")
    picked: list[ColumnElement[Any]] = [value.op("->>")(literal_column(str(i))) for i in range(len(MERGED_COLUMNS))]
    picked[_ATTRIBUTES_AT] = cast(picked[_ATTRIBUTES_AT], JSONB())
    stamp = bindparam("now", type_=UTCDateTime())
    source = select(*picked, stamp, stamp)
    stmt = _on_conflict_merge(
        upserting_insert(conn, contacts).from_select([*MERGED_COLUMNS, "created_at", "updated_at"], source), stamp
    )
    params = {"rows": json.dumps(rows, ensure_ascii=False), "now": now}
    # psycopg reports no row count for this statement (-1): count what it returns instead.
    written = len(conn.execute(stmt.returning(true()), params).all())
    return Merged(inserted=len(rows) - stored, updated=written - (len(rows) - stored))


def _merge_sqlite(conn: Connection, rows: Sequence[tuple[Any, ...]], now: datetime) -> Merged:
    # ``now`` is written into the statement, so that the rows are its parameters as they are: no per-row work.
    stamp = _timestamp_literal(conn, now)
    values: dict[str, Any] = {name: bindparam(name) for name in MERGED_COLUMNS}
    stmt = _on_conflict_merge(
        upserting_insert(conn, contacts).values(**values, created_at=stamp, updated_at=stamp), stamp
    )
    compiled = stmt.compile(dialect=conn.dialect)
    if list(compiled.positiontup or []) != list(MERGED_COLUMNS):
        raise AssertionError(f"unexpected parameter order {compiled.positiontup}")
    before = conn.scalar(select(func.max(contacts.c.id))) or 0
    written = conn.exec_driver_sql(compiled.string, rows).rowcount
    # SQLite gives a new row the largest id plus one, and this transaction is the only writer.
    inserted = (conn.scalar(select(func.max(contacts.c.id))) or 0) - before
    return Merged(inserted, written - inserted, before + 1 if inserted else None)


def attributes_json(attributes: Mapping[str, str]) -> str:
    """Custom attributes (a flat mapping of text) as merge_many takes them: a JSON object, its text escaped as
    ``json.dumps`` (and so SQLAlchemy) escapes it, so that SQLite's text comparison of stored and merged
    attributes sees equal values as equal; at a fifth of ``json.dumps``'s cost per call."""
    return "{" + ",".join([f"{_json_text(k)}:{_json_text(v)}" for k, v in attributes.items()]) + "}"


def _timestamp_literal(conn: Connection, value: datetime) -> ColumnElement[datetime]:
    """``value`` as a literal in the SQL text, spelled as this backend stores a :class:`UTCDateTime`."""
    sql = literal(value, UTCDateTime()).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return literal_column(str(sql), UTCDateTime())


def _on_conflict_merge(stmt: Any, stamp: ColumnElement[datetime]) -> Any:
    """``stmt`` (an insert of MERGED_COLUMNS) merging into the stored contact on a conflict; see merge_many."""
    new = stmt.excluded
    stored_attributes = func.coalesce(contacts.c.attributes, literal_column("'{}'"))
    merged_attributes: ColumnElement[Any]
    if isinstance(stmt, SqliteInsert):
        merged_attributes = func.json_patch(stored_attributes, new.attributes)
        attributes_changed = merged_attributes != func.json(stored_attributes)
    else:
        merged_attributes = stored_attributes.op("||")(new.attributes)
        attributes_changed = merged_attributes != stored_attributes
    plain = [name for name in MERGED_COLUMNS if name not in ("email_key", "attributes")]
    return stmt.on_conflict_do_update(
        index_elements=[contacts.c.email_key],
        set_={
            **{name: func.coalesce(new[name], contacts.c[name]) for name in plain},
            "attributes": merged_attributes,
            "updated_at": stamp,
        },
        where=or_(
            *(and_(new[name].is_not(None), new[name].is_distinct_from(contacts.c[name])) for name in plain),
            attributes_changed,
        ),
    )


def fill_zones(conn: Connection, keys: Sequence[str], zones: Mapping[str, str]) -> None:
    """Give the contacts with these keys that have no time zone the zone of their country, where ``zones``
    (country code to zone) has one."""
    condition, params = in_keys(conn, contacts.c.email_key, keys)
    by_country = bindparam("zones", type_=Text())
    lookup = by_country.op("->>")(contacts.c.country)
    if conn.dialect.name != "sqlite":
        lookup = cast(by_country, JSONB()).op("->>")(contacts.c.country)
    stmt = (
        contacts.update()
        .where(condition, contacts.c.timezone.is_(None), contacts.c.country.is_not(None))
        .values(timezone=lookup)
    )
    conn.execute(stmt, {**params, "zones": json.dumps(zones)})


def without_zone(
    conn: Connection, keys: Sequence[str], *, listed: bool
) -> tuple[int, list[tuple[str, str, str | None]]]:
    """How many contacts with these keys have no time zone, and, if ``listed``, which (``email_key``, ``email``,
    ``country``)."""
    condition, params = in_keys(conn, contacts.c.email_key, keys)
    condition = and_(condition, contacts.c.timezone.is_(None))
    if listed:
        stmt = select(contacts.c.email_key, contacts.c.email, contacts.c.country).where(condition)
        rows = [(key, email, country) for key, email, country in conn.execute(stmt, params)]
        return len(rows), rows
    return conn.execute(select(func.count()).where(condition), params).scalar_one(), []


def ids_by_keys(conn: Connection, keys: Sequence[str]) -> dict[str, int]:
    """The id of each of ``keys`` that is the ``email_key`` of a stored contact, by key (absent keys are left out)."""
    if not keys:
        return {}
    condition, params = in_keys(conn, contacts.c.email_key, keys)
    rows = conn.execute(select(contacts.c.email_key, contacts.c.id).where(condition), params)
    return dict(rows.all())  # (key, id) rows; a Result itself is no mapping, though it has keys()


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
        needle = text.lower()
        # autoescape: ``%`` and ``_`` in the text are themselves, not LIKE wildcards (on either backend).
        stmt = stmt.where(
            or_(
                contacts.c.email_key.contains(needle, autoescape=True),
                func.lower(contacts.c.name).contains(needle, autoescape=True),
                func.lower(contacts.c.organisation).contains(needle, autoescape=True),
            )
        )
    if without_timezone:
        stmt = stmt.where(contacts.c.timezone.is_(None))
    for row in conn.execution_options(yield_per=1000).execute(stmt):
        yield to_contact(row)


def by_ids(conn: Connection, ids: Sequence[int]) -> dict[int, Contact]:
    """Contacts by id, without their timestamps (what sending needs: the delivery worker loads thousands a
    second, so rows become contacts by position, not by name: the columns follow Contact's fields)."""
    if not ids:
        return {}
    stmt = select(contacts.c.id, *(contacts.c[name] for name in CONTACT_FIELDS)).where(contacts.c.id.in_(ids))
    rows = conn.execute(stmt)
    return {
        id_: Contact(id_, email, name, first, last, zone, country, locale, organisation, attributes or {})
        for id_, email, name, first, last, zone, country, locale, organisation, attributes in rows
    }


def by_id(conn: Connection, contact_id: int) -> Contact | None:
    """The contact with this id, or None."""
    row = conn.execute(select(contacts).where(contacts.c.id == contact_id)).first()
    return to_contact(row) if row else None


FEW_MATCHES = 2_000
"""A search prefix with fewer contacts than this (address or name) is looked up through the search indexes;
with more, walking the list finds a page of them sooner (see :func:`list_page`)."""


def list_page(
    conn: Connection, list_id: int, *, prefix: str | None = None, after: int | None = None, limit: int = 50
) -> list[Contact]:
    """Up to ``limit`` contacts of a list in id order, those with an id above ``after`` (keyset pagination: the
    next page starts after the last id of this one, never an OFFSET that reads every row before it).

    ``prefix`` keeps the contacts whose address or name starts with it (any letter case). Without one, or with
    one that many contacts have, the walk follows the list's primary key (list, contact) and reaches each contact
    by its own: a page costs the rows it shows and the members it passes over, and a prefix of at least
    :data:`FEW_MATCHES` contacts is common enough that few are passed over. With a rarer prefix, the contacts that
    have it are read from the search indexes (ix_contacts_email_search, ix_contacts_name_search: one range each)
    and the list's members kept among them, so a prefix that matches little or nothing costs what it matches, not
    the list's size.
    """
    needle = prefix.lower() if prefix else None
    stmt = (
        select(contacts)
        .join(members, members.c.contact_id == contacts.c.id)
        .where(members.c.list_id == list_id)
        .order_by(members.c.contact_id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(members.c.contact_id > after)
    if needle:
        email_prefix = _starting(conn, contacts.c.email_key, needle)
        name_prefix = _starting(conn, func.lower(contacts.c.name), needle)
        stmt = stmt.where(or_(email_prefix, name_prefix))
        having = [
            select(contacts.c.id).where(condition).limit(FEW_MATCHES) for condition in (email_prefix, name_prefix)
        ]
        few = sum(conn.scalar(select(func.count()).select_from(query.subquery())) or 0 for query in having)
        if few < FEW_MATCHES:
            found = union(*(select(contacts.c.id).where(condition) for condition in (email_prefix, name_prefix)))
            stmt = stmt.where(contacts.c.id.in_(select(found.subquery().c.id)))
    return [to_contact(row) for row in conn.execute(stmt)]


def _starting(conn: Connection, column: Any, needle: str) -> Any:
    """``column`` starts with ``needle``, as a range of an index on it: on PostgreSQL a ``LIKE 'needle%'`` (its
    search indexes are in ``text_pattern_ops``, where a prefix is a range; the needle's ``\\``, ``%`` and ``_``
    escaped with PostgreSQL's default escape character); on SQLite, which compares text by its bytes, the range
    itself, from the needle up to the needle followed by the highest code point."""
    if conn.dialect.name == "postgresql":
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(escaped + "%")
    return and_(column >= needle, column < needle + "\U0010ffff")
