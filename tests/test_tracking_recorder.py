"""Stored link destinations (services/links.py) and the hit recorder (services/tracking.py), on real databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import event, func, select, update

from campaign.cli import cli
from campaign.config import TrackingSettings
from campaign.models import TrackingKind
from campaign.services.links import StoredLinkBook
from campaign.services.tracking import REGISTER_LINK, Hit, HitRecorder, purge_tracking
from campaign.store import links as link_store
from campaign.store.engine import Database
from campaign.store.tables import campaigns, contacts, message_activity, messages, registrations, tracking_events, waves
from tests.conftest import DATA
from tests.test_delivery import TEMPLATES, base_settings
from tests.test_scheduling import campaign_with, launch_at

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
SENT_AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
LATER = SENT_AT + timedelta(hours=3)


def sent_messages(db: Database, tmp_path: Path) -> dict[str, int]:
    """A launched campaign whose invitation was sent at SENT_AT to two people; message id by address."""
    start = datetime.now(UTC) + timedelta(days=10)
    campaign_with(db, tmp_path, start, [], {"ana@example.org": "Asia/Manila", "bo@example.org": ""})
    launch_at(db, base_settings(tmp_path), datetime.now(UTC))
    with db.write() as conn:
        conn.execute(update(messages).values(status="sent", sent_at=SENT_AT))
        query = select(contacts.c.email, messages.c.id).join(messages, messages.c.contact_id == contacts.c.id)
        return {row.email: row.id for row in conn.execute(query)}


def events(db: Database) -> list[tuple[int, str, int | None, bool, str | None, str | None]]:
    with db.read() as conn:
        stmt = select(
            tracking_events.c.message_id,
            tracking_events.c.kind,
            tracking_events.c.link_index,
            tracking_events.c.is_machine,
            tracking_events.c.machine_reason,
            tracking_events.c.ip,
        ).order_by(tracking_events.c.id)
        return [tuple(row) for row in conn.execute(stmt)]


def test_destinations_are_stored_once_per_wave_and_found_by_message(db: Database, tmp_path: Path) -> None:
    ids = sent_messages(db, tmp_path)
    with db.read() as conn:
        wave_id = conn.scalar(select(waves.c.id))
    assert wave_id is not None
    first, second = StoredLinkBook(db, wave_id), StoredLinkBook(db, wave_id)  # two sending processes
    register = first.index_of("https://events.example.org/register", "register")
    assert second.index_of("https://events.example.org/register", "register") == register
    other = second.index_of("https://example.org/agenda", "agenda")
    assert other != register
    assert first.index_of("https://example.org/agenda", "agenda") == other
    # The same URL under another name is another link (reports tell them apart).
    assert first.index_of("https://example.org/agenda", "footer agenda") not in (register, other)
    with db.read() as conn:
        ana, bo = ids["ana@example.org"], ids["bo@example.org"]
        assert link_store.link_of_message(conn, ana, register) == ("https://events.example.org/register", "register")
        assert link_store.link_of_message(conn, bo, other) == ("https://example.org/agenda", "agenda")
        assert link_store.link_of_message(conn, bo, 999) is None
        assert link_store.link_of_message(conn, 10**12, register) is None


def recorder(db: Database, **settings: object) -> HitRecorder:
    return HitRecorder(db, TrackingSettings(**settings))  # type: ignore[arg-type]


def test_hits_are_recorded_in_one_batch_people_and_machines_apart(db: Database, tmp_path: Path) -> None:
    ids = sent_messages(db, tmp_path)
    ana, bo = ids["ana@example.org"], ids["bo@example.org"]
    rec = recorder(db)
    assert rec.record(Hit(TrackingKind.OPEN, ana, LATER, user_agent=CHROME, ip="203.0.113.77"))
    # The same open again at once: one mail client fetching twice.
    assert not rec.record(
        Hit(TrackingKind.OPEN, ana, LATER + timedelta(seconds=1), user_agent=CHROME, ip="203.0.113.77")
    )
    assert rec.record(Hit(TrackingKind.OPEN, bo, LATER, user_agent="Mozilla/5.0", ip="17.58.1.2"))  # Apple MPP
    assert rec.record(Hit(TrackingKind.CLICK, bo, SENT_AT + timedelta(seconds=2), link_index=1, user_agent=CHROME))
    assert rec.record(Hit(TrackingKind.OPEN, 10**12, LATER, user_agent=CHROME))  # a deleted message: ignored
    asyncio.run(rec.flush())
    assert events(db) == [
        (ana, "open", None, False, None, "203.0.113.0"),
        (bo, "open", None, True, "Apple Mail Privacy Protection", "17.58.1.0"),
        (bo, "click", 1, True, "within 10 s of delivery", None),
    ]
    assert (rec.stats.recorded, rec.stats.repeats, rec.stats.ignored, rec.stats.machine) == (3, 1, 1, 2)


def test_a_persons_registration_click_registers_them_and_a_scanners_does_not(db: Database, tmp_path: Path) -> None:
    ids = sent_messages(db, tmp_path)
    ana, bo = ids["ana@example.org"], ids["bo@example.org"]
    rec = recorder(db)
    rec.record(Hit(TrackingKind.CLICK, ana, LATER, link_index=1, link_name=REGISTER_LINK, user_agent=CHROME))
    # A scanner walks every link of bo's message within a second.
    rec.record(Hit(TrackingKind.CLICK, bo, LATER, link_index=1, link_name=REGISTER_LINK, user_agent=CHROME))
    rec.record(Hit(TrackingKind.CLICK, bo, LATER + timedelta(milliseconds=300), link_index=2, user_agent=CHROME))
    asyncio.run(rec.flush())
    # ...and in the next batch a third link: the earlier (written) clicks are flagged too.
    rec.record(Hit(TrackingKind.CLICK, bo, LATER + timedelta(milliseconds=900), link_index=3, user_agent=CHROME))
    asyncio.run(rec.flush())
    by_message = {(m, link): (machine, reason) for m, kind, link, machine, reason, _ in events(db)}
    assert by_message[(ana, 1)] == (False, None)
    assert all(by_message[(bo, link)] == (True, "several links within 1 s") for link in (1, 2, 3))
    with db.read() as conn:
        registered = conn.execute(select(registrations.c.contact_id, registrations.c.source)).all()
        ana_contact = conn.scalar(select(messages.c.contact_id).where(messages.c.id == ana))
    assert [tuple(r) for r in registered] == [(ana_contact, "link")]


def test_a_registration_by_a_click_found_out_later_as_a_scanners_is_withdrawn(db: Database, tmp_path: Path) -> None:
    # A scanner's click on Register written alone, its next link half a second later in the next batch (the
    # default flush, a second, is the burst's window: a scanner's clicks often straddle one): the Register click
    # was flagged, but its registration stayed, and the contact counted as registered, reminded as one.
    ids = sent_messages(db, tmp_path)
    ana, bo = ids["ana@example.org"], ids["bo@example.org"]
    rec = recorder(db)
    # ana registered by her own click yesterday: a scanner's burst on her message today takes nothing from that.
    rec.record(Hit(TrackingKind.CLICK, ana, LATER - timedelta(days=1), link_index=1, link_name=REGISTER_LINK,
                   user_agent=CHROME))  # fmt: skip
    rec.record(Hit(TrackingKind.CLICK, bo, LATER, link_index=1, link_name=REGISTER_LINK, user_agent=CHROME))
    rec.record(Hit(TrackingKind.CLICK, ana, LATER, link_index=1, link_name=REGISTER_LINK, user_agent=CHROME))
    asyncio.run(rec.flush())
    assert rec.stats.registrations == 2
    rec.record(Hit(TrackingKind.CLICK, bo, LATER + timedelta(milliseconds=500), link_index=2, user_agent=CHROME))
    rec.record(Hit(TrackingKind.CLICK, ana, LATER + timedelta(milliseconds=500), link_index=2, user_agent=CHROME))
    asyncio.run(rec.flush())
    assert [(m, link, machine) for m, _, link, machine, _, _ in events(db)] == [
        (ana, 1, False),  # yesterday's
        (bo, 1, True),
        (ana, 1, True),
        (bo, 2, True),
        (ana, 2, True),
    ]
    with db.read() as conn:
        registered = conn.execute(select(registrations.c.contact_id, registrations.c.registered_at)).all()
        ana_contact = conn.scalar(select(messages.c.contact_id).where(messages.c.id == ana))
    assert [(contact, at.astimezone(UTC)) for contact, at in registered] == [(ana_contact, LATER - timedelta(days=1))]
    assert rec.stats.registrations == 1


def test_one_clients_clicks_are_each_judged_by_their_own_delivery_time_and_method(db: Database, tmp_path: Path) -> None:
    # A batch's hits of one client share its classification, worked out once; the delivery time and the method
    # still decide for each click.
    ids = sent_messages(db, tmp_path)
    ana, bo = ids["ana@example.org"], ids["bo@example.org"]
    with db.write() as conn:
        conn.execute(update(messages).where(messages.c.id == bo).values(sent_at=LATER - timedelta(seconds=3)))
    rec = recorder(db)
    agent, address = CHROME, "203.0.113.77"  # one client
    rec.record(Hit(TrackingKind.CLICK, ana, LATER, "GET", 1, REGISTER_LINK, agent, address))
    rec.record(Hit(TrackingKind.CLICK, bo, LATER, "GET", 1, REGISTER_LINK, agent, address))
    later = LATER + timedelta(seconds=5)  # not a burst with ana's first click
    rec.record(Hit(TrackingKind.CLICK, ana, later, "HEAD", 2, None, agent, address))
    rec.record(Hit(TrackingKind.CALENDAR, bo, LATER, user_agent=agent, ip=address))
    asyncio.run(rec.flush())
    assert events(db) == [
        (ana, "click", 1, False, None, "203.0.113.0"),
        (bo, "click", 1, True, "within 10 s of delivery", "203.0.113.0"),
        (ana, "click", 2, True, "HEAD request (link checker)", "203.0.113.0"),
        (bo, "calendar", None, True, "within 10 s of delivery", "203.0.113.0"),
    ]
    with db.read() as conn:
        registered = conn.execute(select(registrations.c.message_id)).scalars().all()
    assert registered == [ana]
    assert (rec.stats.recorded, rec.stats.machine, rec.stats.registrations) == (4, 3, 1)


def test_hits_of_messages_deleted_before_their_batch_is_written_are_left_out(db: Database, tmp_path: Path) -> None:
    # The batch's messages are read in its write transaction, which then writes without checking foreign keys
    # again: a message gone by then is not referred to, and the connection checks foreign keys afterwards.
    ids = sent_messages(db, tmp_path)
    ana, bo = ids["ana@example.org"], ids["bo@example.org"]
    rec = recorder(db)
    for message in (ana, bo):
        rec.record(Hit(TrackingKind.OPEN, message, LATER, user_agent=CHROME))
        rec.record(Hit(TrackingKind.CLICK, message, LATER, link_index=1, link_name=REGISTER_LINK, user_agent=CHROME))
    with db.write() as conn:
        conn.execute(messages.delete().where(messages.c.id == bo))
    asyncio.run(rec.flush())
    assert [(m, kind) for m, kind, *_ in events(db)] == [(ana, "open"), (ana, "click")]
    assert (rec.stats.recorded, rec.stats.ignored) == (2, 2)
    with db.read() as conn:
        assert conn.execute(select(registrations.c.message_id)).scalars().all() == [ana]
        if db.is_sqlite:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def test_opens_clicks_and_calendar_downloads_of_a_campaign_that_does_not_track_them_are_not_recorded(
    db: Database, tmp_path: Path
) -> None:
    # The calendar file still downloads (a link of the message), but who fetched it, from where, is not kept: a
    # privacy review found its IP and user agent stored for a campaign with tracking off.
    ids = sent_messages(db, tmp_path)
    with db.write() as conn:
        conn.execute(update(campaigns).values(track_opens=False, track_clicks=False))
    rec = recorder(db, ip="none")
    rec.record(Hit(TrackingKind.OPEN, ids["ana@example.org"], LATER, user_agent=CHROME, ip="203.0.113.77"))
    rec.record(Hit(TrackingKind.CLICK, ids["ana@example.org"], LATER, link_index=1, user_agent=CHROME))
    rec.record(Hit(TrackingKind.CALENDAR, ids["ana@example.org"], LATER, user_agent=CHROME, ip="203.0.113.77"))
    rec.record(Hit(TrackingKind.UNSUBSCRIBE, ids["ana@example.org"], LATER, "POST", user_agent=CHROME))
    asyncio.run(rec.flush())
    assert events(db) == [(ids["ana@example.org"], "unsubscribe", None, False, None, None)]


def test_with_user_agent_none_no_user_agent_is_kept_but_machines_are_still_told_apart(
    db: Database, tmp_path: Path
) -> None:
    ids = sent_messages(db, tmp_path)
    rec = recorder(db, ip="none", user_agent="none")
    proxy = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    rec.record(Hit(TrackingKind.OPEN, ids["ana@example.org"], LATER, user_agent=proxy, ip="203.0.113.77"))
    rec.record(Hit(TrackingKind.CLICK, ids["bo@example.org"], LATER, link_index=1, user_agent=CHROME, ip="203.0.113.8"))
    asyncio.run(rec.flush())
    with db.read() as conn:
        kept = conn.execute(
            select(
                tracking_events.c.kind, tracking_events.c.is_machine, tracking_events.c.ip, tracking_events.c.user_agent
            ).order_by(tracking_events.c.kind)
        ).all()
    assert [tuple(row) for row in kept] == [("click", False, None, None), ("open", True, None, None)]


def test_a_full_buffer_drops_and_counts_instead_of_waiting(db: Database, tmp_path: Path) -> None:
    ids = sent_messages(db, tmp_path)
    rec = recorder(db, queue_size=2)
    taken = [
        rec.record(Hit(TrackingKind.OPEN, ids["ana@example.org"], LATER, user_agent=f"{CHROME} {n}")) for n in range(5)
    ]
    assert taken == [True, True, False, False, False]
    assert rec.stats.dropped == 3
    asyncio.run(rec.flush())
    assert len(events(db)) == 2


def test_the_recorder_writes_within_its_interval_and_on_stop(db: Database, tmp_path: Path) -> None:
    ids = sent_messages(db, tmp_path)
    rec = recorder(db, flush_seconds=0.05)

    async def scenario() -> tuple[int, int]:
        task = asyncio.create_task(rec.run())
        rec.record(Hit(TrackingKind.OPEN, ids["ana@example.org"], LATER, user_agent=CHROME))
        await asyncio.sleep(0.5)
        written_while_running = len(events(db))
        rec.record(Hit(TrackingKind.OPEN, ids["bo@example.org"], LATER, user_agent=CHROME))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return written_while_running, len(events(db))

    assert asyncio.run(scenario()) == (1, 2)


def test_purge_deletes_only_what_is_older_than_the_retention(db: Database, tmp_path: Path) -> None:
    ids = sent_messages(db, tmp_path)
    rec = recorder(db)
    now = datetime(2027, 6, 1, tzinfo=UTC)
    for days_ago in (400, 396, 394, 1):
        rec.record(Hit(TrackingKind.OPEN, ids["ana@example.org"], now - timedelta(days=days_ago), user_agent=CHROME))
    asyncio.run(rec.flush())
    assert purge_tracking(db, TrackingSettings(retention_days=0), now) == 0  # 0: kept for ever
    assert purge_tracking(db, TrackingSettings(), now) == 2  # 395 days by default
    assert len(events(db)) == 2
    assert purge_tracking(db, TrackingSettings(), now, days=2) == 1
    assert len(events(db)) == 1


def test_purge_keeps_old_unsubscribes_counted_without_their_address_or_user_agent(db: Database, tmp_path: Path) -> None:
    # What people asked for stays in the reports (an analyst saw the unsubscribed count fall to 0 after a purge);
    # what identified their device does not.
    ids = sent_messages(db, tmp_path)
    ana, bo = ids["ana@example.org"], ids["bo@example.org"]
    rec = recorder(db, ip="full")
    now = LATER + timedelta(days=400)
    rec.record(Hit(TrackingKind.UNSUBSCRIBE, ana, LATER, "POST", user_agent=CHROME, ip="203.0.113.77"))
    rec.record(Hit(TrackingKind.OPEN, ana, LATER, user_agent=CHROME, ip="203.0.113.77"))
    rec.record(Hit(TrackingKind.UNSUBSCRIBE, bo, now - timedelta(days=1), "POST", user_agent=CHROME, ip="198.51.100.7"))
    asyncio.run(rec.flush())

    assert purge_tracking(db, TrackingSettings(), now) == 1  # the open

    with db.read() as conn:
        left = conn.execute(
            select(
                tracking_events.c.message_id, tracking_events.c.kind, tracking_events.c.ip, tracking_events.c.user_agent
            ).order_by(tracking_events.c.id)
        ).all()
        flagged = dict(conn.execute(select(message_activity.c.message_id, message_activity.c.unsubscribed)).all())
    assert [tuple(row) for row in left] == [
        (ana, "unsubscribe", None, None),
        (bo, "unsubscribe", "198.51.100.7", CHROME),  # within the retention: as it was
    ]
    assert flagged == {ana: True, bo: True}


def test_purge_goes_in_chunks_and_finds_old_events_written_late(db: Database, tmp_path: Path) -> None:
    ids = sent_messages(db, tmp_path)
    rec = recorder(db)
    now = datetime(2027, 6, 1, tzinfo=UTC)
    # 25 old events, then 5 recent ones, then 3 old ones written after them (a late batch): ids out of time order.
    ages = [500 - n for n in range(25)] + [1, 2, 3, 4, 5] + [450, 451, 452]
    for n, days_ago in enumerate(ages):
        at = now - timedelta(days=days_ago)  # each its own user agent: no hit is a repeat of another
        rec.record(Hit(TrackingKind.OPEN, ids["ana@example.org"], at, user_agent=f"{CHROME} {n}"))
    asyncio.run(rec.flush())
    with db.read() as conn:
        first, last = conn.execute(select(func.min(tracking_events.c.id), func.max(tracking_events.c.id))).one()
    assert last - first + 1 == 33
    commits: list[None] = []
    event.listen(db.engine, "commit", lambda _conn: commits.append(None))
    assert purge_tracking(db, TrackingSettings(), now, chunk=10) == 28
    # The read of the ids' range, then ranges of 10 ids, each its own transaction: 10, 10, 10, 3.
    assert len(commits) == 1 + 4
    assert len(events(db)) == 5
    assert purge_tracking(db, TrackingSettings(), now, chunk=10) == 0


def test_create_turns_tracking_off_per_campaign_and_purge_runs_from_the_command_line(
    db: Database, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    url = db.url.render_as_string(hide_password=False)
    config.write_text(f'[database]\nurl = "{url}"\n[paths]\ndata = "data"\ntemplates = "{TEMPLATES}"\n')

    def run(*args: str) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
        return result

    run("init")  # on a migrated database: the data directory and the signing key
    run("contacts", "import", str(DATA / "contacts.csv"), "--list", "webinar")
    run("events", "add", str(DATA / "events" / "ilo-migrant-workers-2020.toml"))
    private = run("create", "--event", "ilo-migrant-workers-2020", "--list", "webinar", "--name", "private",
                  "--waves", "none", "--no-track-opens", "--no-track-clicks")  # fmt: skip
    assert "tracking: opens off, clicks off" in private.output
    usual = run("create", "--event", "ilo-migrant-workers-2020", "--list", "webinar", "--waves", "none")
    assert "tracking: opens on, clicks on" in usual.output
    with db.read() as conn:
        flags = dict(conn.execute(select(campaigns.c.name, campaigns.c.track_opens)).all())
    assert flags == {"private": False, "ilo-migrant-workers-2020-webinar": True}
    assert "Deleted 0 tracking events older than 30 days." in run("tracking", "purge", "--days", "30").output


def test_a_burst_found_later_flags_only_the_burst_not_the_persons_clicks_after_it(db: Database, tmp_path: Path) -> None:
    ids = sent_messages(db, tmp_path)
    ana = ids["ana@example.org"]
    rec = recorder(db)
    rec.record(Hit(TrackingKind.CLICK, ana, LATER, link_index=1, user_agent=CHROME))
    asyncio.run(rec.flush())
    # Next batch: a second link 0.5 s after the first (a scanner), then, ten seconds on, the person's own click.
    rec.record(Hit(TrackingKind.CLICK, ana, LATER + timedelta(milliseconds=500), link_index=2, user_agent=CHROME))
    rec.record(Hit(TrackingKind.CLICK, ana, LATER + timedelta(seconds=10), link_index=3, user_agent=CHROME))
    asyncio.run(rec.flush())
    flags = {link: machine for _, _, link, machine, _, _ in events(db)}
    assert flags == {1: True, 2: True, 3: False}
