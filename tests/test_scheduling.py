"""Firing waves (services.scheduling): at the right instants, in each recipient's window, to the right audience,
exactly once, on a clock the tests control (nothing sleeps)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, exists, func, insert, select, update

from campaign.config import Settings
from campaign.models import Audience, CampaignStatus, MessageStatus, RegistrationSource, WaveKind, WaveStatus
from campaign.rules.event_fields import parse_event_document
from campaign.rules.timing import parse_offset, parse_window
from campaign.rules.wave_specs import WaveSpec, parse_wave_spec
from campaign.services import attendee_import
from campaign.services.attendee_import import import_attendees
from campaign.services.campaigns import create_campaign, get_campaign
from campaign.services.contact_import import import_contacts
from campaign.services.events import add_event
from campaign.services.lifecycle import move
from campaign.services.scheduling import Fired, drop_left_audiences, fire_due, fire_times
from campaign.services.transitions import transition
from campaign.services.waves import WAITS_FOR_ATTENDANCE, WaveOptions, add_wave, list_waves
from campaign.store import attendances, materialise, registrations
from campaign.store import campaigns as campaign_store
from campaign.store import events as event_store
from campaign.store import waves as wave_store
from campaign.store.engine import Database
from campaign.store.tables import (
    campaigns,
    contacts,
    events,
    list_members,
    messages,
    suppressions,
    tracking_events,
    waves,
)
from campaign.store.waves import DueWave
from tests.test_delivery import base_settings

ZURICH = "Europe/Zurich"


def add_contacts(db: Database, tmp_path: Path, people: dict[str, str], list_name: str = "guests") -> None:
    """Import ``{address: zone}`` ("" for none) into a list."""
    path = tmp_path / f"contacts-{len(list(tmp_path.iterdir()))}.csv"
    path.write_text("email,timezone\n" + "".join(f"{a},{z}\n" for a, z in people.items()), encoding="utf-8")
    import_contacts(db, path, list_name)


def event_values(start: datetime, slug: str = "talk", **changes: Any) -> dict[str, Any]:
    """The values of an event file for a one-hour talk at ``start`` in Zurich, with ``changes``."""
    doc = {
        "slug": slug,
        "title": "A talk",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "timezone": ZURICH,
        "registration_url": "https://events.example.org/register",
        "join_url": "https://events.example.org/join",
        **changes,
    }
    return parse_event_document(doc, "test event")


def add_event_at(db: Database, start: datetime, slug: str = "talk") -> None:
    add_event(db, event_values(start, slug))


def campaign_with(
    db: Database, tmp_path: Path, start: datetime, specs: list[str], people: dict[str, str], window: str = ""
) -> None:
    """Campaign ``c`` for an event at ``start``, list ``guests`` of ``people``, an invitation and ``specs``."""
    add_contacts(db, tmp_path, people)
    add_event_at(db, start)
    waves_ = [parse_wave_spec(s) for s in specs]
    create_campaign(db, event_ref="talk", list_name="guests", name="c", waves=waves_, window=window)


def launch_at(db: Database, settings: Settings, now: datetime, ref: str = "c") -> list[Fired]:
    """What launch does, at ``now``: the campaign starts sending and its due waves fire."""
    campaign = get_campaign(db, ref).campaign
    with db.write() as conn:
        transition(conn, campaign.id, CampaignStatus.SENDING, now=now, strict=False)  # again: stays sending
    return fire_due(db, settings, now, campaign_id=campaign.id)


def recipients(db: Database, wave: str) -> dict[str, tuple[str, datetime, str | None]]:
    """The wave's messages by address: status, scheduled_at, last_error."""
    stmt = (
        select(contacts.c.email, messages.c.status, messages.c.scheduled_at, messages.c.last_error)
        .join(messages, messages.c.contact_id == contacts.c.id)
        .join(waves, waves.c.id == messages.c.wave_id)
        .where(waves.c.name == wave)
    )
    with db.read() as conn:
        return {email: (status, at, error) for email, status, at, error in conn.execute(stmt)}


def wave_row(db: Database, name: str) -> dict[str, object]:
    with db.read() as conn:
        return dict(conn.execute(select(waves).where(waves.c.name == name)).one()._mapping)


PEOPLE = {f"p{i}@example.org": ZURICH for i in range(4)}


def test_waves_fire_at_their_instants_across_a_dst_change(db: Database, tmp_path: Path) -> None:
    # Launched in summer time, the event a week after Europe's clocks went back (25 October 2026).
    settings = base_settings(tmp_path)
    start = datetime(2026, 10, 30, 14, 0, tzinfo=UTC)  # 15:00 CET
    launched = datetime(2026, 10, 20, 8, 0, tzinfo=UTC)  # 10:00 CEST
    campaign_with(
        db, tmp_path, start,
        ["last-chance last-chance -7d all 09:00-17:00", "reminder-1d reminder -1d all", "reminder-1h reminder -1h all"],
        PEOPLE,
    )  # fmt: skip
    assert [f.wave for f in launch_at(db, settings, launched)] == ["invitation"]

    planned = {t.wave: t.fires_at for t in fire_times(db)}
    assert planned == {
        "last-chance": start - timedelta(days=7),
        "reminder-1d": start - timedelta(days=1),
        "reminder-1h": start - timedelta(hours=1),
    }
    for name, at in planned.items():
        assert fire_due(db, settings, at - timedelta(seconds=1)) == []
        (fired,) = fire_due(db, settings, at)
        assert (fired.wave, fired.status, fired.queued) == (name, WaveStatus.ENQUEUED, 4)
        assert wave_row(db, name)["enqueued_at"] == at
    # 23 October 14:00 UTC is 16:00 CEST: inside the window; the reminders go at their instant.
    assert {r[1] for r in recipients(db, "last-chance").values()} == {datetime(2026, 10, 23, 14, 0, tzinfo=UTC)}
    assert {r[1] for r in recipients(db, "reminder-1h").values()} == {start - timedelta(hours=1)}
    assert fire_times(db) == []


def test_a_window_is_dst_correct_in_the_recipients_zone(db: Database, tmp_path: Path) -> None:
    # Fired on Saturday 24 October at 20:00 UTC; the next weekday 09:00 in Zurich is Monday 26, after the
    # change to CET: 08:00 UTC, not the 07:00 UTC of summer time.
    settings = base_settings(tmp_path)
    campaign_with(
        db, tmp_path, datetime(2026, 10, 30, 14, tzinfo=UTC), ["reminder reminder 2026-10-24T20:00Z all"], PEOPLE,
        window="mon-fri 09:00-17:00",
    )  # fmt: skip
    launch_at(db, settings, datetime(2026, 10, 20, 8, tzinfo=UTC))
    fire_due(db, settings, datetime(2026, 10, 24, 20, tzinfo=UTC))
    assert {r[1] for r in recipients(db, "reminder").values()} == {datetime(2026, 10, 26, 8, tzinfo=UTC)}


def test_send_windows_per_zone_and_never_after_the_expiry(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    people = {
        "kiritimati@example.org": "Pacific/Kiritimati",  # UTC+14
        "chatham@example.org": "Pacific/Chatham",  # UTC+12:45 in June
        "stjohns@example.org": "America/St_Johns",  # UTC-2:30 in June
        "nozone@example.org": "",  # the organiser's: Europe/Zurich, UTC+2 in June
    }
    # Fires on Saturday 13 June 2026 at 12:00 UTC; each recipient gets Monday 09:00 in their own zone.
    spec = "news reminder 2026-06-13T12:00Z all mon-fri 09:00-17:00"
    campaign_with(db, tmp_path, datetime(2026, 6, 20, 12, tzinfo=UTC), [spec], people)
    launch_at(db, settings, datetime(2026, 6, 1, 12, tzinfo=UTC))
    (fired,) = fire_due(db, settings, datetime(2026, 6, 13, 12, tzinfo=UTC))
    assert (fired.queued, fired.expired) == (4, 0)
    got = {email: at for email, (_, at, _) in recipients(db, "news").items()}
    assert got == {
        "kiritimati@example.org": datetime(2026, 6, 14, 19, 0, tzinfo=UTC),
        "chatham@example.org": datetime(2026, 6, 14, 20, 15, tzinfo=UTC),
        "stjohns@example.org": datetime(2026, 6, 15, 11, 30, tzinfo=UTC),
        "nozone@example.org": datetime(2026, 6, 15, 7, 0, tzinfo=UTC),
    }
    for email, zone in people.items():
        local = got[email].astimezone(ZoneInfo(zone or ZURICH))
        assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)


def test_a_zone_whose_window_opens_after_the_expiry_is_expired_not_sent_late(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    people = {"kiritimati@example.org": "Pacific/Kiritimati", "stjohns@example.org": "America/St_Johns"}
    campaign_with(db, tmp_path, datetime(2026, 6, 20, 12, tzinfo=UTC), [], people)
    launch_at(db, settings, datetime(2026, 6, 1, 12, tzinfo=UTC))
    with db.write() as conn:
        values = {"name": "late", "kind": "reminder", "template": "reminder", "audience": "all", "status": "pending",
                  "send_at": datetime(2026, 6, 13, 12, tzinfo=UTC), "window": "mon-fri 09:00-17:00",
                  "expires_at": datetime(2026, 6, 15, 10, tzinfo=UTC),
                  "campaign_id": get_campaign(db, "c").campaign.id}  # fmt: skip
        campaign_store.insert_wave(conn, values, datetime(2026, 6, 1, tzinfo=UTC))
    (fired,) = fire_due(db, settings, datetime(2026, 6, 13, 12, tzinfo=UTC))
    assert (fired.queued, fired.expired) == (1, 1)
    got = recipients(db, "late")
    assert got["kiritimati@example.org"][:2] == ("queued", datetime(2026, 6, 14, 19, tzinfo=UTC))
    status, _, error = got["stjohns@example.org"]
    assert status == "expired"
    assert error is not None
    assert "mon-fri 09:00-17:00" in error
    assert "America/St_Johns" in error


def test_firing_again_or_from_two_threads_materialises_once(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    start = datetime(2026, 6, 20, 12, tzinfo=UTC)
    people = {f"p{i}@example.org": ZURICH for i in range(30)}
    campaign_with(db, tmp_path, start, ["reminder-1d reminder -1d all", "reminder-1h reminder -1h all"], people)
    launch_at(db, settings, datetime(2026, 6, 1, tzinfo=UTC))
    assert launch_at(db, settings, datetime(2026, 6, 1, tzinfo=UTC)) == []  # nothing due twice

    now = start - timedelta(minutes=30)  # both reminders are due
    handles = [Database(db.url.render_as_string(hide_password=False)) for _ in range(2)]
    results: list[list[Fired]] = [[], []]
    barrier = threading.Barrier(2)

    def fire(n: int) -> None:
        barrier.wait()
        results[n] = fire_due(handles[n], settings, now)

    threads = [threading.Thread(target=fire, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for handle in handles:
        handle.dispose()
    fired = Counter(f.wave for result in results for f in result)
    assert fired == {"reminder-1d": 1, "reminder-1h": 1}
    assert fire_due(db, settings, now) == []
    for name in ("invitation", "reminder-1d", "reminder-1h"):
        assert len(recipients(db, name)) == 30


def test_a_wave_due_while_nothing_ran_is_sent_late_unless_it_expired(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    start = datetime(2026, 6, 20, 12, tzinfo=UTC)
    specs = ["reminder-1d reminder -1d all", "reminder-1h reminder -1h all", "follow-up follow-up +1d all"]
    campaign_with(db, tmp_path, start, specs, PEOPLE)
    launch_at(db, settings, datetime(2026, 6, 1, tzinfo=UTC))
    # The service was down from before -1d until two days after the session.
    back = start + timedelta(days=2)
    fired = {f.wave: f for f in fire_due(db, settings, back)}
    assert {name: f.status for name, f in fired.items()} == {
        "reminder-1d": WaveStatus.MISSED,
        "reminder-1h": WaveStatus.MISSED,
        "follow-up": WaveStatus.ENQUEUED,  # a follow-up lives 14 days past the end
    }
    reason = fired["reminder-1h"].reason
    assert reason is not None
    # On the organiser's clock (Europe/Zurich, summer), UTC beside.
    assert "due at 2026-06-20 13:00 Central European Summer Time (11:00 UTC)" in reason
    assert "expired at 2026-06-20 14:00 Central European Summer Time (12:00 UTC)" in reason
    row = wave_row(db, "reminder-1h")
    assert (row["status"], row["missed_reason"]) == ("missed", reason)
    assert recipients(db, "reminder-1h") == {}
    assert {r[0] for r in recipients(db, "follow-up").values()} == {"queued"}
    assert fire_due(db, settings, back) == []


def insert_event_for(db: Database, email: str, kind: str, *, machine: bool = False) -> None:
    """A tracking event on the invitation sent to ``email``."""
    with db.write() as conn:
        message_id = conn.scalar(
            select(messages.c.id)
            .join(contacts, contacts.c.id == messages.c.contact_id)
            .join(waves, waves.c.id == messages.c.wave_id)
            .where(contacts.c.email == email, waves.c.name == "invitation")
        )
        conn.execute(
            insert(tracking_events).values(
                message_id=message_id, kind=kind, is_machine=machine, occurred_at=datetime(2026, 6, 2, tzinfo=UTC)
            )
        )


def register(db: Database, email: str, event_slug: str, source: RegistrationSource, message: str | None) -> None:
    """A registration of ``email`` for the event, from ``source``; naming its message of the wave ``message``
    (a click on its registration link), or no message (registered on the webinar platform)."""
    with db.write() as conn:
        contact_id = conn.execute(select(contacts.c.id).where(contacts.c.email == email)).scalar_one()
        event_id = conn.execute(select(events.c.id).where(events.c.slug == event_slug)).scalar_one()
        message_id = None
        if message is not None:
            message_id = conn.scalar(
                select(messages.c.id)
                .join(waves, waves.c.id == messages.c.wave_id)
                .where(messages.c.contact_id == contact_id, waves.c.name == message)
            )
            assert message_id is not None
        at = datetime(2026, 6, 2, tzinfo=UTC)
        registration = registrations.Registration(event_id, contact_id, source, at, message_id)
        assert registrations.record(conn, [registration], at) == 1


def attend(db: Database, email: str, event_slug: str) -> None:
    """An attendance of ``email`` at the event, as an attendee report's import records it."""
    with db.write() as conn:
        contact_id = conn.execute(select(contacts.c.id).where(contacts.c.email == email)).scalar_one()
        event_id = conn.execute(select(events.c.id).where(events.c.slug == event_slug)).scalar_one()
        at = datetime(2026, 6, 20, 12, 5, tzinfo=UTC)
        assert attendances.record(conn, [attendances.Attendance(event_id, contact_id, at, 30, "zoom")], at).added == 1
        event_store.mark_attendance_reported(conn, event_id, at)  # as the import's end does


def test_audiences_select_exactly_the_right_contacts(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    start = datetime(2026, 6, 20, 12, tzinfo=UTC)
    who = ("reg", "imported", "opener", "proxied", "clicker", "blocked", "scanned", "quiet")
    people = {f"{name}@example.org": "" for name in who}
    specs = [f"to-{a.value} reminder -1d {a.value}" for a in Audience]
    campaign_with(db, tmp_path, start, specs, people)
    # Another event's registration says nothing about this one.
    add_event_at(db, start, "other")
    create_campaign(db, event_ref="other", list_name="guests", name="other")
    launch_at(db, settings, datetime(2026, 6, 1, tzinfo=UTC))
    launch_at(db, settings, datetime(2026, 6, 1, tzinfo=UTC), "other")
    # Registered by the link in the invitation, and again by the platform's export: selected once.
    register(db, "reg@example.org", "talk", RegistrationSource.LINK, "invitation")
    register(db, "reg@example.org", "talk", RegistrationSource.IMPORT, None)
    # Registered on the webinar platform, with no message at all: registered as much.
    register(db, "imported@example.org", "talk", RegistrationSource.IMPORT, None)
    register(db, "quiet@example.org", "other", RegistrationSource.WEBHOOK, None)
    insert_event_for(db, "opener@example.org", "open")
    insert_event_for(db, "proxied@example.org", "open", machine=True)  # a privacy proxy, not the person
    insert_event_for(db, "clicker@example.org", "click")
    insert_event_for(db, "clicker@example.org", "open")
    # Images blocked: no open recorded, but a person who clicked a link has read the message.
    insert_event_for(db, "blocked@example.org", "click")
    insert_event_for(db, "scanned@example.org", "click", machine=True)  # a link scanner: neither
    # Joined the event (its attendee report imported), registered or not; joining another event says nothing.
    attend(db, "reg@example.org", "talk")
    attend(db, "blocked@example.org", "talk")
    attend(db, "quiet@example.org", "other")

    fire_due(db, settings, start - timedelta(days=1))
    everyone = set(people)
    expected = {
        Audience.ALL: everyone,
        Audience.REGISTERED: {"reg@example.org", "imported@example.org"},
        Audience.OPENED: {"opener@example.org", "clicker@example.org", "blocked@example.org"},
        Audience.CLICKED: {"clicker@example.org", "blocked@example.org"},
        Audience.INVITED: set(),  # the invitations are queued, not sent: they reached nobody yet
        Audience.ATTENDED: {"reg@example.org", "blocked@example.org"},
    }
    for positive in (Audience.REGISTERED, Audience.OPENED, Audience.CLICKED, Audience.ATTENDED):
        expected[Audience(f"not-{positive.value}")] = everyone - expected[positive]
    got = {audience: set(recipients(db, f"to-{audience.value}")) for audience in Audience}
    assert got == expected


def test_late_additions_get_the_invitation_and_only_the_waves_to_come(db: Database, tmp_path: Path) -> None:
    # The top-up looks at list members added since the invitation fired: on the real clock, as imports are.
    settings = base_settings(tmp_path)
    launched = datetime.now(UTC)
    start = launched + timedelta(days=10)
    campaign_with(db, tmp_path, start, ["early reminder -7d all", "reminder-1d reminder -1d all"], PEOPLE)
    launch_at(db, settings, launched)
    fire_due(db, settings, start - timedelta(days=7))
    add_contacts(db, tmp_path, {"late@example.org": "America/St_Johns", "p0@example.org": ZURICH})

    fired = fire_due(db, settings, start - timedelta(days=6))
    assert [(f.wave, f.queued, f.topped_up) for f in fired] == [("invitation", 1, True)]
    assert "late@example.org" in recipients(db, "invitation")
    assert "late@example.org" not in recipients(db, "early")
    assert fire_due(db, settings, start - timedelta(days=6)) == []  # topped up once
    fire_due(db, settings, start - timedelta(days=1))
    assert len(recipients(db, "reminder-1d")) == 5  # a wave still to come includes them

    # Once the session has started, a newcomer is not invited any more.
    add_contacts(db, tmp_path, {"too-late@example.org": ""})
    assert fire_due(db, settings, start + timedelta(minutes=1)) == []
    assert "too-late@example.org" not in recipients(db, "invitation")


def test_a_sent_campaign_reopens_for_a_newcomer_before_the_event(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    launched = datetime.now(UTC)
    campaign_with(db, tmp_path, launched + timedelta(days=3), [], PEOPLE)
    launch_at(db, settings, launched)
    with db.write() as conn:  # as if every invitation went out
        conn.execute(update(messages).values(status=MessageStatus.SENT.value))
        conn.execute(update(waves).values(status=WaveStatus.DONE.value))
        conn.execute(update(campaigns).values(status=CampaignStatus.SENT.value))
    add_contacts(db, tmp_path, {"new@example.org": ""})
    (fired,) = fire_due(db, settings, launched + timedelta(hours=1))
    assert fired.queued == 1
    details = get_campaign(db, "c")
    assert details.campaign.status is CampaignStatus.SENDING
    assert details.waves[0].status is WaveStatus.ENQUEUED


def test_a_paused_campaigns_waves_wait(db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    start = datetime(2026, 6, 20, 12, tzinfo=UTC)
    campaign_with(db, tmp_path, start, ["reminder-1d reminder -1d all"], PEOPLE)
    launch_at(db, settings, datetime(2026, 6, 1, tzinfo=UTC))
    with db.write() as conn:
        conn.execute(update(campaigns).values(status=CampaignStatus.PAUSED.value))
    assert fire_due(db, settings, start - timedelta(hours=2)) == []
    assert wave_row(db, "reminder-1d")["status"] == "pending"


def test_the_wave_spec_and_offset_helpers_agree_with_the_rows(db: Database, tmp_path: Path) -> None:
    campaign_with(
        db, tmp_path, datetime(2026, 6, 20, 12, tzinfo=UTC), ["r reminder -1d12h registered 09:00-17:00"], PEOPLE
    )
    row = wave_row(db, "r")
    assert row["offset_seconds"] == int(parse_offset("-1d12h").total_seconds())
    assert row["window"] == "09:00-17:00"
    assert parse_window(str(row["window"])) == parse_window("09:00-17:00")
    assert (row["kind"], row["audience"], row["template"]) == ("reminder", "registered", "reminder")
    spec = WaveSpec("x", WaveKind.REMINDER, None, None, Audience.ALL)
    assert spec.window is None


@pytest.mark.parametrize("members", [0, 3])
def test_list_members_joined_to_nothing_fire_cleanly(db: Database, tmp_path: Path, members: int) -> None:
    settings = base_settings(tmp_path)
    people = {f"m{i}@example.org": "" for i in range(members)} or {"only@example.org": ""}
    campaign_with(db, tmp_path, datetime(2026, 6, 20, 12, tzinfo=UTC), [], people)
    if members == 0:
        with db.write() as conn:
            conn.execute(list_members.delete())
    (fired,) = launch_at(db, settings, datetime(2026, 6, 1, tzinfo=UTC))
    assert fired.queued == members


def test_a_wave_whose_time_passed_before_the_launch_is_missed_not_sent_with_the_invitation(
    db: Database, tmp_path: Path
) -> None:
    """Launched three days before the event, a campaign must not send its -7d last chance with the invitation."""
    settings = base_settings(tmp_path)
    real = datetime.now(UTC).replace(microsecond=0)
    launched = real + timedelta(days=10)  # the waves were planned (created) before the launch, as in real use
    start = launched + timedelta(days=3)
    campaign_with(db, tmp_path, start, ["last-chance last-chance -7d all", "reminder-1d reminder -1d all"], PEOPLE)
    fired = {f.wave: f for f in launch_at(db, settings, launched)}
    assert fired["invitation"].status is WaveStatus.ENQUEUED
    assert fired["last-chance"].status is WaveStatus.MISSED
    assert "had passed when the campaign was launched" in str(fired["last-chance"].reason)
    assert recipients(db, "last-chance") == {}
    assert [t.wave for t in fire_times(db)] == ["reminder-1d"]  # still to come, at its own time


def test_a_wave_added_after_the_launch_with_its_time_past_goes_out_at_once(db: Database, tmp_path: Path) -> None:
    """Staff who add a wave to a running campaign want it sent, even if its offset points to the past."""
    settings = base_settings(tmp_path)
    real = datetime.now(UTC).replace(microsecond=0)
    launched = real - timedelta(days=28)
    start = real + timedelta(days=30)
    campaign_with(db, tmp_path, start, [], PEOPLE)
    launch_at(db, settings, launched)
    # 31 days ago: 3 days before the launch. The shipped templates (base_settings) have a reminder.
    add_wave(db, settings, "c", "nudge", WaveOptions(kind="reminder", at="-61d", audience="all"))
    (fired,) = fire_due(db, settings, real)
    assert (fired.wave, fired.status, fired.queued) == ("nudge", WaveStatus.ENQUEUED, 4)


def queued_on(db: Database, campaign: str = "c") -> int:
    """The campaign's messages still queued."""
    stmt = (
        select(func.count())
        .select_from(messages)
        .join(waves, waves.c.id == messages.c.wave_id)
        .join(campaigns, campaigns.c.id == waves.c.campaign_id)
        .where(campaigns.c.name == campaign, messages.c.status == MessageStatus.QUEUED.value)
    )
    with db.read() as conn:
        return int(conn.scalar(stmt) or 0)


REMINDER_START = datetime(2026, 6, 20, 12, tzinfo=UTC)


def launched_with_a_reminder(db: Database, tmp_path: Path, settings: Settings) -> datetime:
    """Campaign ``c`` launched, its invitation fired; returns when its -1d reminder is due."""
    campaign_with(db, tmp_path, REMINDER_START, ["reminder-1d reminder -1d all"], PEOPLE)
    launch_at(db, settings, datetime(2026, 6, 1, tzinfo=UTC))
    return REMINDER_START - timedelta(days=1)


def test_a_wave_edited_after_fire_due_read_it_fires_with_the_new_settings(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process edits the wave between fire_due's first read and its write: the firing uses the edit.
    settings = base_settings(tmp_path)
    due = launched_with_a_reminder(db, tmp_path, settings)
    read = wave_store.waves_in

    def read_then_edit(*args: Any, **kwargs: Any) -> list[DueWave]:
        found = read(*args, **kwargs)
        with db.write() as conn:
            conn.execute(
                update(waves)
                .where(waves.c.name == "reminder-1d")
                .values(audience=Audience.REGISTERED.value, window="mon-fri 09:00-17:00", expires_offset_seconds=-60)
            )
        return found

    monkeypatch.setattr(wave_store, "waves_in", read_then_edit)
    (fired,) = fire_due(db, settings, due)
    assert (fired.wave, fired.status, fired.queued) == ("reminder-1d", WaveStatus.ENQUEUED, 0)  # nobody registered
    row = wave_row(db, "reminder-1d")
    assert row["expires_at"] == REMINDER_START - timedelta(minutes=1)


def test_a_wave_moved_later_after_fire_due_read_it_waits_for_its_new_time(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = base_settings(tmp_path)
    due = launched_with_a_reminder(db, tmp_path, settings)
    read = wave_store.waves_in

    def read_then_edit(*args: Any, **kwargs: Any) -> list[DueWave]:
        found = read(*args, **kwargs)
        with db.write() as conn:
            hour = int(timedelta(hours=-1).total_seconds())
            conn.execute(update(waves).where(waves.c.name == "reminder-1d").values(offset_seconds=hour))
        return found

    monkeypatch.setattr(wave_store, "waves_in", read_then_edit)
    assert fire_due(db, settings, due) == []
    assert wave_row(db, "reminder-1d")["status"] == "pending"


@pytest.mark.parametrize("order", ["cancel, then fire", "fire, then cancel"])
def test_a_cancelled_campaign_keeps_no_queued_message(db: Database, tmp_path: Path, order: str) -> None:
    settings = base_settings(tmp_path)
    due = launched_with_a_reminder(db, tmp_path, settings)
    if order == "cancel, then fire":
        move(db, "c", CampaignStatus.CANCELLED)
        assert fire_due(db, settings, due) == []
    else:
        assert [f.wave for f in fire_due(db, settings, due)] == ["reminder-1d"]
        move(db, "c", CampaignStatus.CANCELLED)
    assert queued_on(db) == 0
    assert wave_row(db, "reminder-1d")["status"] == "cancelled"


def test_a_cancel_during_a_materialisation_strands_no_queued_message(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cancel comes while the wave's INSERT ... SELECT is written but not committed. On PostgreSQL the cancel
    # must wait for it (the campaign row is locked FOR SHARE), else it cancels the rows it can see, not these.
    settings = base_settings(tmp_path)
    due = launched_with_a_reminder(db, tmp_path, settings)
    materialise_now = materialise.materialise_wave
    inside = threading.Event()

    def materialise_slowly(*args: Any, **kwargs: Any) -> Counter[str]:
        counts = materialise_now(*args, **kwargs)
        inside.set()
        time.sleep(0.5)  # the cancel runs now, before this transaction commits
        return counts

    monkeypatch.setattr(materialise, "materialise_wave", materialise_slowly)
    handles = [Database(db.url.render_as_string(hide_password=False)) for _ in range(2)]
    errors: list[BaseException] = []

    def fire() -> None:
        fire_due(handles[0], settings, due)

    def cancel() -> None:
        assert inside.wait(10)
        try:
            move(handles[1], "c", CampaignStatus.CANCELLED)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=fire), threading.Thread(target=cancel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for handle in handles:
        handle.dispose()
    assert errors == []
    assert get_campaign(db, "c").campaign.status is CampaignStatus.CANCELLED
    assert queued_on(db) == 0
    assert len(recipients(db, "reminder-1d")) == 4  # fired, and cancelled with the campaign
    assert wave_row(db, "reminder-1d")["status"] == "cancelled"


def test_one_bad_wave_does_not_hold_up_the_others(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = base_settings(tmp_path)
    campaign_with(db, tmp_path, REMINDER_START, ["broken reminder -2d all", "reminder-1d reminder -1d all"], PEOPLE)
    with db.write() as conn:  # a row no code writes, as a bug or a hand edit might leave it
        conn.execute(update(waves).where(waves.c.name == "broken").values(window="whenever"))
    launch_at(db, settings, datetime(2026, 6, 1, tzinfo=UTC))
    with caplog.at_level(logging.ERROR, logger="campaign.services.scheduling"):
        fired = fire_due(db, settings, REMINDER_START - timedelta(hours=2))
    assert [(f.wave, f.status) for f in fired] == [("reminder-1d", WaveStatus.ENQUEUED)]
    assert "wave broken could not be fired" in caplog.text
    assert wave_row(db, "broken")["status"] == "pending"  # tried again at the next tick


# SQLite only: about SQLite's one write lock (BEGIN IMMEDIATE), which PostgreSQL does not have.
def test_an_idle_top_up_takes_no_write_lock(sqlite_db: Database, tmp_path: Path) -> None:
    # Every tick asks each fired invitation whether anyone joined its list; on SQLite, asking under BEGIN
    # IMMEDIATE would take the one write lock from the delivery worker every time.
    settings = base_settings(tmp_path)
    launched = datetime.now(UTC)
    campaign_with(sqlite_db, tmp_path, launched + timedelta(days=3), [], PEOPLE)
    launch_at(sqlite_db, settings, launched)
    impatient = Database(sqlite_db.url.render_as_string(hide_password=False), busy_timeout_ms=100)
    try:
        with sqlite_db.write():  # another process writing
            assert fire_due(impatient, settings, launched + timedelta(hours=1)) == []
    finally:
        impatient.dispose()


# SQLite only: reads SQLite's EXPLAIN QUERY PLAN.
def test_the_top_up_finds_newcomers_through_an_index(sqlite_db: Database) -> None:
    since = datetime(2026, 6, 1, tzinfo=UTC)
    stmt = select(exists().where(list_members.c.list_id == 1, list_members.c.added_at >= since))
    with sqlite_db.read() as conn:
        compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
        assert materialise.joined_since(conn, 1, since) is False
    assert "ix_list_members_list_id_added_at" in plan


# SQLite only: reads SQLite's EXPLAIN QUERY PLAN.
def test_firing_reads_the_zones_one_index_seek_each(sqlite_db: Database, tmp_path: Path) -> None:
    # Firing computes one instant per zone: their distinct values come from seeks in ix_contacts_timezone, not
    # from reading every member of the list (a fifth of a second for a million: bench/waves.py).
    add_contacts(sqlite_db, tmp_path, {"a@example.org": "Asia/Manila", "b@example.org": "", "c@example.org": ZURICH,
                                       "d@example.org": "Asia/Manila", "e@example.org": "America/Lima"})  # fmt: skip
    executed: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        executed.append(statement)

    event.listen(sqlite_db.engine, "before_cursor_execute", record)
    try:
        with sqlite_db.read() as conn:
            zones = materialise.stored_zones(conn)
    finally:
        event.remove(sqlite_db.engine, "before_cursor_execute", record)
    assert zones == ["America/Lima", "Asia/Manila", ZURICH, None]
    (statement,) = [s for s in executed if "contacts" in s]
    with sqlite_db.read() as conn:
        plan = [str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}")]
    reads = [step for step in plan if "contacts" in step]
    assert reads, plan
    assert all("ix_contacts_timezone" in step for step in reads), plan


# SQLite only: reads SQLite's EXPLAIN QUERY PLAN.
def test_firing_reads_the_list_in_order_and_looks_each_zone_up_in_an_index(sqlite_db: Database, tmp_path: Path) -> None:
    # The materialising INSERT reads the list in order and finds each recipient's zone instant in an index: not
    # by reading every zone row for every recipient, nor contacts zone by zone through ix_contacts_timezone (five
    # times slower either way in bench/waves.py).
    executed: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        executed.append((statement, parameters))

    launched = datetime(2026, 6, 1, 12, tzinfo=UTC)
    campaign_with(sqlite_db, tmp_path, launched + timedelta(days=3), [], PEOPLE, window="mon-fri 09:00-17:00")
    event.listen(sqlite_db.engine, "before_cursor_execute", record)
    try:
        launch_at(sqlite_db, base_settings(tmp_path), launched)
    finally:
        event.remove(sqlite_db.engine, "before_cursor_execute", record)
    (statement, parameters), *_ = [(s, p) for s, p in executed if s.startswith("INSERT INTO messages")]
    with sqlite_db.read() as conn:
        plan = [str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
    reads = [step for step in plan if step.startswith(("SCAN", "SEARCH")) and "VIRTUAL TABLE" not in step]
    assert reads[0].startswith("SEARCH list_members"), plan
    assert not any("ix_contacts_timezone" in step for step in plan), plan
    assert any(step.startswith("SEARCH r USING") and "INDEX" in step for step in plan), plan


def test_a_firing_counts_what_it_added_by_status(db: Database, tmp_path: Path) -> None:
    # The queued rows are counted as the rows added less the others (not read again from the index): the three
    # statuses a firing writes must still add up, each to its own count.
    settings = base_settings(tmp_path)
    people = {"kiritimati@example.org": "Pacific/Kiritimati", "stjohns@example.org": "America/St_Johns",
              "gone@example.org": "Pacific/Kiritimati", "other@example.org": ZURICH}  # fmt: skip
    campaign_with(db, tmp_path, datetime(2026, 6, 20, 12, tzinfo=UTC), [], people)
    launch_at(db, settings, datetime(2026, 6, 1, 12, tzinfo=UTC))
    with db.write() as conn:
        conn.execute(
            insert(suppressions).values(
                email_key="gone@example.org", reason="unsubscribed", created_at=datetime.now(UTC)
            )
        )
        values = {"name": "late", "kind": "reminder", "template": "reminder", "audience": "all", "status": "pending",
                  "send_at": datetime(2026, 6, 13, 12, tzinfo=UTC), "window": "mon-fri 09:00-17:00",
                  "expires_at": datetime(2026, 6, 15, 10, tzinfo=UTC),
                  "campaign_id": get_campaign(db, "c").campaign.id}  # fmt: skip
        campaign_store.insert_wave(conn, values, datetime(2026, 6, 1, tzinfo=UTC))
    (fired,) = fire_due(db, settings, datetime(2026, 6, 13, 12, tzinfo=UTC))
    assert (fired.queued, fired.suppressed, fired.expired) == (2, 1, 1)
    assert Counter(status for status, _, _ in recipients(db, "late").values()) == {
        "queued": 2,
        "suppressed": 1,
        "expired": 1,
    }


def test_a_wave_to_attendees_or_not_waits_for_the_attendee_report(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fired at its time before any attendee report was imported, a not-attended follow-up ("sorry we missed you")
    # went to everyone, those who joined too, and an attended one to nobody, done for good (a review's reproduction).
    settings = base_settings(tmp_path)
    start = datetime.now(UTC) + timedelta(days=3)
    specs = ["sorry follow-up +2h not-attended", "thanks follow-up +2h attended"]
    campaign_with(db, tmp_path, start, specs, PEOPLE)
    launch_at(db, settings, datetime.now(UTC))
    after = start + timedelta(hours=3)
    assert fire_due(db, settings, after) == []  # no report yet: both wait, past their time
    assert wave_row(db, "sorry")["status"] == wave_row(db, "thanks")["status"] == "pending"
    waits = {line.name: line.waits for line in list_waves(db, "c").waves}
    assert waits == {"invitation": None, "sorry": WAITS_FOR_ATTENDANCE, "thanks": WAITS_FOR_ATTENDANCE}
    report = tmp_path / "attendees.csv"
    report.write_text("email,attended\np0@example.org,yes\n" + "".join(f"p{i}@example.org,no\n" for i in (1, 2, 3)))
    # The scheduler ticks between the report's batches (one row each here): nothing fires on a part of it.
    ticked: list[list[Fired]] = []
    real_record = attendee_import._record

    def record_then_tick(*args: Any) -> None:
        real_record(*args)
        ticked.append(fire_due(db, settings, after + timedelta(seconds=30)))

    monkeypatch.setattr(attendee_import, "_record", record_then_tick)
    import_attendees(db, "talk", report, batch_size=1)
    assert ticked == [[]]  # one batch: the one attendee; the three who did not come are skipped rows
    fired = {f.wave: f for f in fire_due(db, settings, after + timedelta(minutes=1))}
    assert (fired["thanks"].status, fired["thanks"].queued) == (WaveStatus.ENQUEUED, 1)
    assert (fired["sorry"].status, fired["sorry"].queued) == (WaveStatus.ENQUEUED, len(PEOPLE) - 1)
    assert "p0@example.org" not in recipients(db, "sorry")


def test_a_wave_to_attendees_without_a_report_before_it_expires_is_missed_saying_so(
    db: Database, tmp_path: Path
) -> None:
    settings = base_settings(tmp_path)
    start = datetime.now(UTC) + timedelta(days=3)
    campaign_with(db, tmp_path, start, ["sorry follow-up +2h not-attended"], PEOPLE)
    launch_at(db, settings, datetime.now(UTC))
    (fired,) = fire_due(db, settings, start + timedelta(days=15))  # a follow-up expires 14 days after the end
    assert fired.status is WaveStatus.MISSED
    assert "no attendee report of its event was imported before it expired" in str(fired.reason)


def test_a_contact_who_left_a_not_audience_before_their_message_went_is_not_sent_it(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A "last chance to register" fired Friday 18:00, held for Monday's office hours, reached on Monday someone who
    # had registered on Saturday (a review's reproduction): a wave's audience was only looked at when it fired.
    from scheduler.service import SchedulerService
    from tests.test_serve import context_for

    settings = base_settings(tmp_path)
    start = (datetime.now(UTC) + timedelta(days=10)).replace(hour=12, minute=0, second=0, microsecond=0)
    specs = ["last last-chance -7d not-registered", "nudge reminder -7d not-opened", "all-of-them reminder -7d all"]
    campaign_with(db, tmp_path, start, specs, PEOPLE, window="09:00-10:00")  # 13:00 in Zurich: tomorrow 09:00
    launch_at(db, settings, datetime.now(UTC))
    fired_at = start - timedelta(days=7)
    fire_due(db, settings, fired_at)
    assert {status for status, _, _ in recipients(db, "last").values()} == {"queued"}
    register(db, "p1@example.org", "talk", RegistrationSource.IMPORT, None)
    with db.write() as conn:  # p2 opens their invitation, as a person
        p2 = conn.scalar(select(contacts.c.id).where(contacts.c.email == "p2@example.org"))
        invitation = conn.scalar(select(messages.c.id).where(messages.c.contact_id == p2).order_by(messages.c.id))
        conn.execute(update(messages).where(messages.c.id == invitation).values(status="sent", sent_at=fired_at))
        conn.execute(
            insert(tracking_events).values(
                message_id=invitation, kind="open", is_machine=False, occurred_at=fired_at + timedelta(hours=1)
            )
        )
    with caplog.at_level(logging.INFO):
        report = SchedulerService(context_for(settings, db)).tick(fired_at + timedelta(hours=2))
    assert sorted((d.wave, d.cancelled) for d in report.dropped) == [("last", 1), ("nudge", 1)]
    assert "left the audience campaign=c wave=last cancelled=1" in caplog.text
    reason = "not sent: registered since the wave fired, so no longer in its audience (not-registered)"
    assert recipients(db, "last")["p1@example.org"] == ("cancelled", start - timedelta(days=6, hours=4), reason)
    assert recipients(db, "nudge")["p2@example.org"][0] == "cancelled"
    assert Counter(s for s, _, _ in recipients(db, "last").values()) == {"queued": len(PEOPLE) - 1, "cancelled": 1}
    assert Counter(s for s, _, _ in recipients(db, "all-of-them").values()) == {"queued": len(PEOPLE)}
    assert drop_left_audiences(db, fired_at + timedelta(hours=3)) == []  # once


def test_a_report_where_nobody_attended_lets_a_not_attended_wave_reach_everyone(db: Database, tmp_path: Path) -> None:
    # Judged by an attendance being stored, such a report kept the wave waiting, then missed "no report imported".
    settings = base_settings(tmp_path)
    start = datetime.now(UTC) + timedelta(days=3)
    campaign_with(db, tmp_path, start, ["sorry follow-up +2h not-attended"], PEOPLE)
    launch_at(db, settings, datetime.now(UTC))
    report = tmp_path / "attendees.csv"
    report.write_text("email,attended\n" + "".join(f"{address},no\n" for address in PEOPLE))
    import_attendees(db, "talk", report)
    (fired,) = fire_due(db, settings, start + timedelta(hours=3))
    assert (fired.wave, fired.status, fired.queued) == ("sorry", WaveStatus.ENQUEUED, len(PEOPLE))
