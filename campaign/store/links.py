"""SQL for the ``links`` table: each wave's link destinations, which click tokens point at by index."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, literal, select

from campaign.store.dialect import insert_ignoring_conflicts
from campaign.store.tables import links, messages

# Link names label links in reports; a longer one is cut to the column's size.
MAX_LINK_NAME = 100


def wave_links(conn: Connection, wave_id: int) -> dict[str, int]:
    """The wave's stored destinations: link index by ``url_key``."""
    stmt = select(links.c.url_key, links.c.link_index).where(links.c.wave_id == wave_id)
    return {row.url_key: row.link_index for row in conn.execute(stmt)}


def add_link(conn: Connection, wave_id: int, name: str, url: str, url_key: str, now: datetime) -> int | None:
    """Store a destination under the wave's next free index; its index, or None when another process took that
    index for another destination meanwhile (the caller tries again). Storing one already stored returns its
    index."""
    next_index = select(func.coalesce(func.max(links.c.link_index), 0) + 1).where(links.c.wave_id == wave_id)
    source = select(
        literal(wave_id),
        next_index.scalar_subquery(),
        literal(name[:MAX_LINK_NAME]),
        literal(url),
        literal(url_key),
        literal(now, type_=links.c.created_at.type),
    )
    columns = ["wave_id", "link_index", "name", "url", "url_key", "created_at"]
    conn.execute(insert_ignoring_conflicts(conn, links).from_select(columns, source))
    found = select(links.c.link_index).where(links.c.wave_id == wave_id, links.c.url_key == url_key)
    index: int | None = conn.scalar(found)
    return index


def link_of_message(conn: Connection, message_id: int, link_index: int) -> tuple[str, str] | None:
    """Link ``link_index`` of message ``message_id`` as (destination, name): what the click endpoint redirects to
    and records; None when the message or its wave has no such link."""
    stmt = (
        select(links.c.url, links.c.name)
        .join(messages, messages.c.wave_id == links.c.wave_id)
        .where(messages.c.id == message_id, links.c.link_index == link_index)
    )
    row = conn.execute(stmt).first()
    return (row.url, row.name) if row else None
