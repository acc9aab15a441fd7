"""SQL for the ``links`` table: each wave's link destinations, which click tokens point at by index."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, literal, select, update

from campaign.store.dialect import insert_ignoring_conflicts
from campaign.store.tables import campaigns, links, messages, waves

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
    return links_of_messages(conn, [(message_id, link_index)]).get((message_id, link_index))


_LINKS_OF_MESSAGES = (
    select(messages.c.id, links.c.link_index, links.c.url, links.c.name)
    .join(messages, messages.c.wave_id == links.c.wave_id)
    .where(
        messages.c.id.in_(bindparam("messages", expanding=True)),
        links.c.link_index.in_(bindparam("indexes", expanding=True)),
    )
)


def links_of_messages(conn: Connection, keys: Collection[tuple[int, int]]) -> dict[tuple[int, int], tuple[str, str]]:
    """:func:`link_of_message` of each (message id, link index) of ``keys`` that has one, in one query."""
    if not keys:
        return {}
    wanted = set(keys)
    # Every asked index of every asked message (each a seek in the unique (wave, index) key), then only the pairs
    # asked: a message asked with one index and another with a second one costs a row too many, no more.
    rows = conn.execute(
        _LINKS_OF_MESSAGES, {"messages": list({m for m, _ in wanted}), "indexes": list({i for _, i in wanted})}
    )
    return {(m, i): (url, name) for m, i, url, name in rows if (m, i) in wanted}


_LINKS_OF_WAVES = select(links.c.wave_id, links.c.link_index, links.c.url, links.c.name).where(
    links.c.wave_id.in_(bindparam("waves", expanding=True)),
    links.c.link_index.in_(bindparam("indexes", expanding=True)),
)


def links_of_waves(conn: Connection, keys: Collection[tuple[int, int]]) -> dict[tuple[int, int], tuple[str, str]]:
    """Link ``link_index`` of wave ``wave_id`` as (destination, name) for each (wave id, link index) of ``keys``
    that has one, in one query (seeks in the unique (wave, index) key)."""
    if not keys:
        return {}
    wanted = set(keys)
    rows = conn.execute(
        _LINKS_OF_WAVES, {"waves": list({w for w, _ in wanted}), "indexes": list({i for _, i in wanted})}
    )
    return {(w, i): (url, name) for w, i, url, name in rows if (w, i) in wanted}


def retarget(conn: Connection, event_id: int, name: str, old_url: str, new_url: str) -> int:
    """Send the links named ``name`` of the event's waves that lead to ``old_url`` to ``new_url`` instead (the
    event's Join link, or its time in an add-to-calendar link, changed after messages went out); returns how many.
    Their digest (``url_key``) stays: a wave rendered again stores the new URL as a link of its own."""
    of_event = (
        select(waves.c.id)
        .join(campaigns, campaigns.c.id == waves.c.campaign_id)
        .where(campaigns.c.event_id == event_id)
        .scalar_subquery()
    )
    changed: int = conn.execute(
        update(links)
        .where(links.c.wave_id.in_(of_event), links.c.name == name, links.c.url == old_url)
        .values(url=new_url),
        execution_options={"preserve_rowcount": True},
    ).rowcount
    return changed
