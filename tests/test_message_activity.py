"""message_activity (migration 0013): each message's activity, kept by triggers on tracking_events, equals what its
events say, worked out here in Python from the events themselves, after every kind of write: the recorder's
batches, a burst found later that re-flags written clicks, events inserted and deleted by plain SQL, the purge, a
message deleted. On SQLite and PostgreSQL (the triggers differ)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select

from campaign.config import TrackingSettings
from campaign.models import TrackingKind
from campaign.services.links import StoredLinkBook
from campaign.services.tracking import REGISTER_LINK, Hit, purge_tracking
from campaign.store.engine import Database
from campaign.store.tables import links, message_activity, messages, tracking_events, waves
from tests.test_tracking_recorder import CHROME, LATER, recorder, sent_messages


def expected(db: Database) -> dict[int, tuple[Any, ...]]:
    """Each message's activity from its tracking events, counted here (a click implies a person's open)."""
    with db.read() as conn:
        names = {(w, i): n for w, i, n in conn.execute(select(links.c.wave_id, links.c.link_index, links.c.name))}
        wave_of: dict[int, int] = dict(conn.execute(select(messages.c.id, messages.c.wave_id)).all())
        rows = conn.execute(
            select(
                tracking_events.c.message_id,
                tracking_events.c.kind,
                tracking_events.c.link_index,
                tracking_events.c.is_machine,
                tracking_events.c.occurred_at,
            )
        ).all()
    found: dict[int, dict[str, Any]] = {}
    for message, kind, link, machine, at in rows:
        row = found.setdefault(
            message, {"open": [], "click": [], "mo": False, "mc": False, "reg": False, "unsub": False}
        )
        if not machine and kind in ("open", "click"):
            row["open"].append(at)
        if not machine and kind == "click":
            row["click"].append(at)
            row["reg"] |= names.get((wave_of[message], link)) == REGISTER_LINK
        row["mo"] |= machine and kind == "open"
        row["mc"] |= machine and kind == "click"
        row["unsub"] |= kind == "unsubscribe"
    return {
        m: (min(r["open"], default=None), min(r["click"], default=None), r["mo"], r["mc"], r["reg"], r["unsub"])
        for m, r in found.items()
    }


def kept(db: Database) -> dict[int, tuple[Any, ...]]:
    a = message_activity
    with db.read() as conn:
        stmt = select(
            a.c.message_id,
            a.c.human_opened_at,
            a.c.human_clicked_at,
            a.c.machine_opened,
            a.c.machine_clicked,
            a.c.register_clicked,
            a.c.unsubscribed,
        )
        return {m: (o, c, bool(mo), bool(mc), bool(r), bool(u)) for m, o, c, mo, mc, r, u in conn.execute(stmt)}


def test_each_messages_activity_follows_its_events_through_every_write(db: Database, tmp_path: Path) -> None:
    ids = sent_messages(db, tmp_path)
    ana, bo = ids["ana@example.org"], ids["bo@example.org"]
    with db.read() as conn:
        wave_id = conn.scalar(select(waves.c.id))
    assert wave_id is not None
    book = StoredLinkBook(db, wave_id)
    register = book.index_of("https://events.example.org/register", REGISTER_LINK)
    agenda = book.index_of("https://example.org/agenda", "agenda")
    footer = book.index_of("https://example.org/footer", "footer")
    rec = recorder(db)
    # ana: a person's click on Register (no open seen: images blocked), bo: Apple's proxy opens, then bo opens.
    rec.record(Hit(TrackingKind.CLICK, ana, LATER, link_index=register, link_name=REGISTER_LINK, user_agent=CHROME))
    rec.record(Hit(TrackingKind.OPEN, bo, LATER, user_agent="Mozilla/5.0", ip="17.58.1.2"))
    rec.record(Hit(TrackingKind.OPEN, bo, LATER + timedelta(hours=1), user_agent=CHROME, ip="203.0.113.9"))
    asyncio.run(rec.flush())
    first = expected(db)
    assert first[ana][:2] == (LATER, LATER)  # the click is an open
    assert first[ana][4] is True  # and Register's
    assert first[bo] == (LATER + timedelta(hours=1), None, True, False, False, False)
    assert kept(db) == first
    # Next batch: another link of ana's within a second: a scanner's burst, the written click re-flagged too.
    rec.record(Hit(TrackingKind.CLICK, ana, LATER + timedelta(milliseconds=400), link_index=agenda, user_agent=CHROME))
    asyncio.run(rec.flush())
    reflagged = expected(db)
    assert reflagged[ana] == (None, None, False, True, False, False)
    assert kept(db) == reflagged
    # Then ana's own click, later; and plain SQL: an earlier open of bo's by a person, an unsubscribe.
    rec.record(Hit(TrackingKind.CLICK, ana, LATER + timedelta(minutes=5), link_index=footer, user_agent=CHROME))
    asyncio.run(rec.flush())
    with db.write() as conn:
        conn.execute(
            insert(tracking_events),
            [
                {"message_id": bo, "kind": "open", "is_machine": False, "occurred_at": LATER - timedelta(minutes=1)},
                {"message_id": bo, "kind": "unsubscribe", "is_machine": False, "occurred_at": LATER},
            ],
        )
    later = expected(db)
    assert later[ana][:2] == (LATER + timedelta(minutes=5),) * 2
    assert later[bo][0] == LATER - timedelta(minutes=1)
    assert later[bo][5] is True
    assert kept(db) == later
    # The purge of what is older than a moment: what is left decides (bo's earliest open goes).
    cutoff = LATER - timedelta(seconds=30)
    assert purge_tracking(db, TrackingSettings(), cutoff + timedelta(days=30), days=30) == 1
    # And plain SQL: the scanner's burst on ana's message deleted (no machine's click left).
    with db.write() as conn:
        conn.execute(delete(tracking_events).where(tracking_events.c.link_index.in_((register, agenda))))
    purged = expected(db)
    assert purged[bo][0] == LATER + timedelta(hours=1)
    assert purged[ana][3] is False
    assert kept(db) == purged
    # A message deleted: its events go (their cascade), and its activity with them.
    with db.write() as conn:
        conn.execute(delete(messages).where(messages.c.id == bo))
    assert set(kept(db)) == {ana}
    assert kept(db) == expected(db)
    # Every event of a message deleted: no activity left.
    with db.write() as conn:
        conn.execute(delete(tracking_events))
    assert kept(db) == {} == expected(db)
