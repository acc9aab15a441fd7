"""SQL for contact lists and their members."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, func, insert, literal, select

from campaign.models import ContactList
from campaign.store.dialect import in_keys, insert_ignoring_conflicts
from campaign.store.tables import UTCDateTime, contacts, lists
from campaign.store.tables import list_members as members


def get_or_create(conn: Connection, name: str, now: datetime) -> int:
    """The id of the list called ``name``, created if it does not exist."""
    list_id: int | None = conn.scalar(select(lists.c.id).where(lists.c.name == name))
    if list_id is None:
        list_id = conn.execute(insert(lists).values(name=name, created_at=now).returning(lists.c.id)).scalar_one()
    return list_id


def find(conn: Connection, name: str) -> ContactList | None:
    """The list called ``name`` with its size, or None."""
    for contact_list in _with_sizes(conn, name):
        return contact_list
    return None


def all_lists(conn: Connection) -> list[ContactList]:
    """Every list with its size, by name."""
    return _with_sizes(conn, None)


def _with_sizes(conn: Connection, name: str | None) -> list[ContactList]:
    size = select(func.count()).where(members.c.list_id == lists.c.id).scalar_subquery()
    stmt = select(lists.c.id, lists.c.name, lists.c.created_at, size.label("size")).order_by(lists.c.name)
    if name is not None:
        stmt = stmt.where(lists.c.name == name)
    return [ContactList(id=r.id, name=r.name, size=r.size, created_at=r.created_at) for r in conn.execute(stmt)]


def add_members_from_id(conn: Connection, list_id: int, first_id: int, now: datetime) -> None:
    """Add the contacts whose id is ``first_id`` or more to a list (those just inserted: see ``Merged``)."""
    chosen = select(literal(list_id), contacts.c.id, literal(now, UTCDateTime())).where(contacts.c.id >= first_id)
    conn.execute(insert_ignoring_conflicts(conn, members).from_select(["list_id", "contact_id", "added_at"], chosen))


def add_members_by_key(conn: Connection, list_id: int, email_keys: Sequence[str], now: datetime) -> None:
    """Add the contacts with these keys to a list; those already in it stay as they are. Unknown keys are skipped.

    One ``INSERT ... SELECT``: nothing is sent or converted per contact but its key.
    """
    if email_keys:
        condition, params = in_keys(conn, contacts.c.email_key, email_keys)
        chosen = (
            select(literal(list_id), contacts.c.id, literal(now, UTCDateTime()))
            .where(condition)
            # In id order, the members' indexes grow at their end instead of being written all over.
            .order_by(contacts.c.id)
        )
        stmt = insert_ignoring_conflicts(conn, members).from_select(["list_id", "contact_id", "added_at"], chosen)
        conn.execute(stmt, params)


def by_id(conn: Connection, list_id: int) -> ContactList | None:
    """The list with this id, with its size, or None."""
    size = select(func.count()).where(members.c.list_id == lists.c.id).scalar_subquery()
    stmt = select(lists.c.id, lists.c.name, lists.c.created_at, size.label("size")).where(lists.c.id == list_id)
    row = conn.execute(stmt).first()
    return None if row is None else ContactList(id=row.id, name=row.name, size=row.size, created_at=row.created_at)
