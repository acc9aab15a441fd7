"""SQL for what a launch confirmation states: how many members of a list would get a ``suppressed`` row.

The condition is the one :func:`campaign.store.materialise.enqueue_wave` writes ``suppressed`` with: the address is in
``suppressions``, or it asked for no more mail about the campaign's event (``event_unsubscribes``). One count, in
the database, however long the list.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, func, or_, select

from campaign.store.tables import contacts, event_unsubscribes, list_members, suppressions


def suppressed_members(conn: Connection, list_id: int, event_id: int) -> int:
    """How many members of list ``list_id`` are suppressed, or have left event ``event_id``'s mail."""
    stmt = (
        select(func.count())
        .select_from(list_members)
        .join(contacts, contacts.c.id == list_members.c.contact_id)
        .outerjoin(suppressions, suppressions.c.email_key == contacts.c.email_key)
        .outerjoin(
            event_unsubscribes,
            and_(event_unsubscribes.c.event_id == event_id, event_unsubscribes.c.email_key == contacts.c.email_key),
        )
        .where(
            list_members.c.list_id == list_id,
            or_(suppressions.c.reason.is_not(None), event_unsubscribes.c.id.is_not(None)),
        )
    )
    return int(conn.execute(stmt).scalar_one())
